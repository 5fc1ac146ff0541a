import { describe, expect, it } from 'vitest';
import { GridError } from '../../src/common/errors.js';
import { DEFAULT_DETECTOR_CONFIG, scaleDetectorConfig, validateDetectorConfig } from '../../src/detector/config.js';
import { phiOf } from '../../src/detector/phi-accrual.js';
import { Monitor, type MonitorInput, type VerdictChange } from '../../src/detector/monitor.js';
import { ShellLikeDriver, seededRandom } from './helpers.js';

// Crossing instants for a punctual peer under the defaults (mean 100 + pause
// 300, sd floored at 100), from the hand computation in phi-accrual.test.ts.
const SUSPECT_AFTER_MS = 811.91914909627255203;
const FAIL_AFTER_MS = 922.59866440935634263;

const tick: MonitorInput = { kind: 'tick' };
const hb = (peer: string, incarnation: bigint, sentSeq?: number): MonitorInput =>
  sentSeq === undefined ? { kind: 'heartbeat', peer, incarnation } : { kind: 'heartbeat', peer, incarnation, sentSeq };

/** A monitor watching `peer` (incarnation 1) since 0, heartbeats every 100 ms from 0 to lastMs. */
function punctual(lastMs: number, peer = 'a'): Monitor {
  const m = new Monitor(DEFAULT_DETECTOR_CONFIG);
  m.step({ kind: 'watch', peer, incarnation: 1n }, 0);
  for (let t = 0; t <= lastMs; t += 100) expect(m.step(hb(peer, 1n), t)).toEqual({ changes: [], ignored: null });
  m.checkInvariants();
  return m;
}

function change(partial: Omit<VerdictChange, 'phi' | 'silenceMs' | 'atMs'>, phi: number, silenceMs: number, atMs: number) {
  return { ...partial, phi: expect.closeTo(phi, 9), silenceMs: expect.closeTo(silenceMs, 6), atMs: expect.closeTo(atMs, 6) };
}

describe('Monitor: exact outputs', () => {
  it('alive → suspected → failed at the hand-computed instants (M1, M4)', () => {
    const m = punctual(1000);
    expect(m.nextDeadlineMs()).toBeCloseTo(1000 + SUSPECT_AFTER_MS, 6);
    expect(m.step(tick, 1811)).toEqual({ changes: [], ignored: null });
    expect(m.step(tick, 1812)).toEqual({
      changes: [change({ peer: 'a', incarnation: 1n, from: 'alive', to: 'suspected' }, 5, SUSPECT_AFTER_MS, 1000 + SUSPECT_AFTER_MS)],
      ignored: null,
    });
    expect(m.nextDeadlineMs()).toBeCloseTo(1000 + FAIL_AFTER_MS, 6);
    expect(m.step(tick, 1922)).toEqual({ changes: [], ignored: null });
    expect(m.step(tick, 1923)).toEqual({
      changes: [change({ peer: 'a', incarnation: 1n, from: 'suspected', to: 'failed' }, 8, FAIL_AFTER_MS, 1000 + FAIL_AFTER_MS)],
      ignored: null,
    });
    expect(m.nextDeadlineMs()).toBeNull();
    m.checkInvariants();
  });

  it('a late tick reports both crossings, each at its own instant (tick independence, M3)', () => {
    const m = punctual(1000);
    const out = m.step(tick, 5000);
    expect(out.changes).toEqual([
      change({ peer: 'a', incarnation: 1n, from: 'alive', to: 'suspected' }, 5, SUSPECT_AFTER_MS, 1000 + SUSPECT_AFTER_MS),
      change({ peer: 'a', incarnation: 1n, from: 'suspected', to: 'failed' }, 8, FAIL_AFTER_MS, 1000 + FAIL_AFTER_MS),
    ]);
  });

  it('a heartbeat after the suspicion instant first applies it, then clears it', () => {
    const m = punctual(1000);
    const out = m.step(hb('a', 1n), 1850); // no tick ever came: the step applies the due crossing first
    expect(out.changes).toEqual([
      change({ peer: 'a', incarnation: 1n, from: 'alive', to: 'suspected' }, 5, SUSPECT_AFTER_MS, 1000 + SUSPECT_AFTER_MS),
      change({ peer: 'a', incarnation: 1n, from: 'suspected', to: 'alive' }, phiOf(850, 400, 100), 850, 1850),
    ]);
    expect(out.changes[1]!.phi).toBeGreaterThan(5);
    expect(m.status(1850)[0]!.verdict).toBe('alive');
    m.checkInvariants();
  });

  it('a heartbeat after the failure instant is ignored: failed is final (M1)', () => {
    const m = punctual(1000);
    const out = m.step(hb('a', 1n), 2000);
    expect(out.changes.map((c) => `${c.from}→${c.to}`)).toEqual(['alive→suspected', 'suspected→failed']);
    expect(out.ignored).toBe('failed-incarnation');
    expect(m.step(hb('a', 1n), 2100)).toEqual({ changes: [], ignored: 'failed-incarnation' });
    expect(m.status(2100)[0]!.verdict).toBe('failed');
    expect(m.counters().ignoredFailedIncarnation).toBe(2);
  });

  it('orders simultaneous crossings by peer name and others by instant', () => {
    const m = new Monitor(DEFAULT_DETECTOR_CONFIG);
    for (const p of ['c', 'a', 'b']) m.step({ kind: 'watch', peer: p, incarnation: 1n }, 0);
    m.step(hb('b', 1n), 50); // b's crossings are 50 ms later than a's and c's
    const out = m.step(tick, 10_000);
    expect(out.changes.map((c) => `${c.peer}:${c.to}`)).toEqual([
      'a:suspected',
      'c:suspected',
      'b:suspected',
      'a:failed',
      'c:failed',
      'b:failed',
    ]);
  });
});

describe('Monitor: the product requirements at 100 ms heartbeats', () => {
  /** 100 ms heartbeats with uniform ±20 ms jitter on each send instant. */
  function jittered(seed: number, minutes: number): { driver: ShellLikeDriver; lastMs: number; maxPhi: number } {
    const random = seededRandom(seed);
    const driver = new ShellLikeDriver(new Monitor(DEFAULT_DETECTOR_CONFIG));
    driver.feed({ kind: 'watch', peer: 'agent-1', incarnation: 7n }, 0);
    let lastMs = 0;
    let maxPhi = 0;
    const beats = (minutes * 60_000) / 100;
    for (let k = 1; k <= beats; k += 1) {
      const t = k * 100 + (random() * 40 - 20); // the first beat follows the watch by ~100 ms
      driver.advanceTo(t);
      maxPhi = Math.max(maxPhi, driver.monitor.status(t)[0]!.phi);
      driver.monitor.step(hb('agent-1', 7n, k), t);
      lastMs = t;
    }
    return { driver, lastMs, maxPhi };
  }

  it('keeps a jittery but live peer alive for 10 minutes with phi low', () => {
    const { driver, lastMs, maxPhi } = jittered(1, 10);
    driver.monitor.checkInvariants();
    expect(driver.changes).toEqual([]);
    expect(maxPhi).toBeLessThan(0.01);
    const [s] = driver.monitor.status(lastMs);
    expect(s).toMatchObject({ verdict: 'alive', heartbeats: 6000, samples: 200 });
    expect(s!.meanIntervalMs).toBeGreaterThan(95);
    expect(s!.meanIntervalMs).toBeLessThan(105);
    expect(s!.stdDevIntervalMs).toBeLessThan(25); // two uniform ±20 jitters: ~16 ms
  });

  it('declares a killed peer failed in under 2 s, suspected first', () => {
    for (const seed of [2, 3, 4]) {
      const { driver, lastMs } = jittered(seed, 1);
      const killedAtMs = lastMs + 30; // dies before its next beat
      driver.advanceTo(lastMs + 10_000);
      expect(driver.changes.map((c) => c.to)).toEqual(['suspected', 'failed']);
      const failed = driver.changes[1]!;
      expect(failed.atMs - killedAtMs).toBeLessThan(2000);
      // The sd is at its floor; only the learned mean (100 ± a few ms) moves the instant.
      expect(Math.abs(failed.atMs - lastMs - FAIL_AFTER_MS)).toBeLessThan(5);
      expect(failed.phi).toBeCloseTo(8, 9);
    }
  });

  it('does not fail a 500 ms stall, nor even suspect it', () => {
    const { driver, lastMs } = jittered(5, 1);
    driver.feed(hb('agent-1', 7n, 100_000), lastMs + 500);
    for (let k = 1; k <= 50; k += 1) driver.feed(hb('agent-1', 7n, 100_000 + k), lastMs + 500 + k * 100);
    expect(driver.changes).toEqual([]);
    expect(driver.monitor.status(lastMs + 5500)[0]!.verdict).toBe('alive');
  });

  it('fails a 3 s stall and ignores the heartbeats that follow it', () => {
    const { driver, lastMs } = jittered(6, 1);
    const out = driver.feed(hb('agent-1', 7n, 100_000), lastMs + 3000);
    expect(driver.changes.map((c) => c.to)).toEqual(['suspected', 'failed']);
    expect(out.ignored).toBe('failed-incarnation');
  });

  it('suspects an 850 ms stall and clears the suspicion on the next heartbeat', () => {
    const { driver, lastMs } = jittered(7, 1);
    driver.feed(hb('agent-1', 7n, 100_000), lastMs + 850);
    expect(driver.changes.map((c) => `${c.from}→${c.to}`)).toEqual(['alive→suspected', 'suspected→alive']);
    expect(driver.changes[1]).toMatchObject({ atMs: lastMs + 850, silenceMs: 850 });
    expect(driver.changes[1]!.phi).toBeGreaterThan(5);
    expect(driver.changes[1]!.phi).toBeLessThan(8);
  });
});

describe('Monitor: nextDeadlineMs (M4, M5)', () => {
  it('is exact: a tick 1 ms before changes nothing, a tick at it changes the verdict', () => {
    const random = seededRandom(11);
    for (let trial = 0; trial < 50; trial += 1) {
      const m = new Monitor(DEFAULT_DETECTOR_CONFIG);
      m.step({ kind: 'watch', peer: 'p', incarnation: 1n }, 0);
      let t = 0;
      const beats = 1 + Math.floor(random() * 300);
      for (let k = 0; k < beats; k += 1) {
        t += 20 + random() * (random() < 0.05 ? 600 : 200); // irregular: a wide learned spread
        m.step(hb('p', 1n), t);
      }
      for (const to of ['suspected', 'failed']) {
        const d = m.nextDeadlineMs()!;
        expect(m.step(tick, d - 1).changes).toEqual([]);
        expect(m.step(tick, d).changes.map((c) => c.to)).toEqual([to]);
        m.checkInvariants();
      }
      expect(m.nextDeadlineMs()).toBeNull();
    }
  });

  it('is the earliest crossing among peers, and null when nothing can change', () => {
    const m = new Monitor(DEFAULT_DETECTOR_CONFIG);
    expect(m.nextDeadlineMs()).toBeNull();
    m.step({ kind: 'watch', peer: 'a', incarnation: 1n }, 0);
    m.step({ kind: 'watch', peer: 'b', incarnation: 1n }, 200);
    expect(m.nextDeadlineMs()).toBeCloseTo(SUSPECT_AFTER_MS, 6);
    m.step(hb('a', 1n), 300);
    expect(m.nextDeadlineMs()).toBeCloseTo(200 + SUSPECT_AFTER_MS, 6);
    m.step({ kind: 'unwatch', peer: 'b' }, 300);
    expect(m.nextDeadlineMs()).toBeCloseTo(300 + SUSPECT_AFTER_MS, 6);
    m.step({ kind: 'unwatch', peer: 'a' }, 300);
    expect(m.nextDeadlineMs()).toBeNull();
    m.checkInvariants();
  });
});

describe('Monitor: incarnation fencing (M2)', () => {
  it('ignores older incarnations and revives a failed peer on a newer one', () => {
    const m = punctual(1000);
    m.step(tick, 3000); // failed
    expect(m.step(hb('a', 0n), 3100)).toEqual({ changes: [], ignored: 'stale-incarnation' });
    expect(m.step({ kind: 'watch', peer: 'a', incarnation: 0n }, 3100)).toEqual({ changes: [], ignored: 'stale-incarnation' });
    expect(m.step(hb('a', 1n), 3100)).toEqual({ changes: [], ignored: 'failed-incarnation' });
    const out = m.step(hb('a', 2n, 1), 3200);
    expect(out).toEqual({
      changes: [{ peer: 'a', incarnation: 2n, from: 'failed', to: 'alive', phi: expect.any(Number), silenceMs: 2200, atMs: 3200 }],
      ignored: null,
    });
    expect(m.status(3200)[0]).toMatchObject({ incarnation: 2n, verdict: 'alive', heartbeats: 1, samples: 2 });
    expect(m.step(hb('a', 1n), 3250)).toEqual({ changes: [], ignored: 'stale-incarnation' });
    expect(m.nextDeadlineMs()).toBeCloseTo(3200 + SUSPECT_AFTER_MS, 6); // a fresh window
    m.checkInvariants();
  });

  it('ends a live incarnation when a newer one heartbeats (a quick restart)', () => {
    const m = punctual(1000);
    const out = m.step(hb('a', 5n), 1100);
    expect(out.changes).toEqual([
      { peer: 'a', incarnation: 1n, from: 'alive', to: 'failed', phi: expect.any(Number), silenceMs: 100, atMs: 1100 },
      { peer: 'a', incarnation: 5n, from: 'failed', to: 'alive', phi: expect.any(Number), silenceMs: 100, atMs: 1100 },
    ]);
    expect(out.changes[0]!.phi).toBeLessThan(1e-3);
    expect(m.counters()).toMatchObject({ failures: 1, incarnationsStarted: 2 });
  });

  it('a watch with a newer incarnation does the same; the same incarnation is a no-op', () => {
    const m = punctual(500);
    expect(m.step({ kind: 'watch', peer: 'a', incarnation: 1n }, 550)).toEqual({ changes: [], ignored: null });
    const out = m.step({ kind: 'watch', peer: 'a', incarnation: 2n }, 600);
    expect(out.changes.map((c) => `${c.incarnation}:${c.from}→${c.to}`)).toEqual(['1:alive→failed', '2:failed→alive']);
    expect(m.status(600)[0]).toMatchObject({ incarnation: 2n, heartbeats: 0 });
  });

  it('drops heartbeats whose sequence number is not newer', () => {
    const m = new Monitor(DEFAULT_DETECTOR_CONFIG);
    m.step({ kind: 'watch', peer: 'a', incarnation: 1n }, 0);
    expect(m.step(hb('a', 1n, 5), 100).ignored).toBeNull();
    expect(m.step(hb('a', 1n, 5), 110).ignored).toBe('stale-seq');
    expect(m.step(hb('a', 1n, 3), 120).ignored).toBe('stale-seq');
    expect(m.step(hb('a', 1n), 130).ignored).toBeNull(); // no sequence number: accepted
    expect(m.step(hb('a', 1n, 9), 200).ignored).toBeNull(); // gaps are fine (skipped beats)
    expect(m.status(200)[0]!.heartbeats).toBe(3);
    expect(m.counters().ignoredStaleSeq).toBe(2);
  });

  it('ignores heartbeats from peers it does not watch', () => {
    const m = new Monitor(DEFAULT_DETECTOR_CONFIG);
    expect(m.step(hb('x', 1n), 0)).toEqual({ changes: [], ignored: 'unknown-peer' });
    expect(m.step({ kind: 'unwatch', peer: 'x' }, 0)).toEqual({ changes: [], ignored: 'unknown-peer' });
    expect(m.peerCount).toBe(0);
  });
});

describe('Monitor: rejected input changes nothing', () => {
  const snapshot = (m: Monitor): string =>
    JSON.stringify(m.status(10_000), (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));

  function expectRejected(m: Monitor, input: unknown, nowMs: number, kind: string): void {
    const before = snapshot(m);
    const deadline = m.nextDeadlineMs();
    let caught: unknown;
    try {
      m.step(input as MonitorInput, nowMs);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(GridError);
    expect((caught as GridError).kind).toBe(kind);
    expect(snapshot(m)).toBe(before);
    expect(m.nextDeadlineMs()).toBe(deadline);
    m.checkInvariants();
  }

  it('rejects bad times, names, incarnations, sequence numbers and kinds (M8)', () => {
    const m = punctual(1000);
    expectRejected(m, tick, 999, 'invalid-argument');
    expectRejected(m, tick, NaN, 'invalid-argument');
    expectRejected(m, hb('no/slash', 1n), 5000, 'invalid-argument');
    expectRejected(m, { kind: 'heartbeat', peer: 'a', incarnation: 1 }, 5000, 'invalid-argument');
    expectRejected(m, hb('a', -1n), 5000, 'invalid-argument');
    expectRejected(m, hb('a', 1n, -1), 5000, 'invalid-argument');
    expectRejected(m, hb('a', 1n, 1.5), 5000, 'invalid-argument');
    expectRejected(m, { kind: 'bogus', peer: 'a' }, 5000, 'invalid-argument');
    expectRejected(m, { kind: 'watch', peer: 42, incarnation: 1n }, 5000, 'invalid-argument');
  });

  it('refuses to watch more than maxPeers (M7)', () => {
    const m = new Monitor({ ...DEFAULT_DETECTOR_CONFIG, maxPeers: 2 });
    m.step({ kind: 'watch', peer: 'a', incarnation: 1n }, 0);
    m.step({ kind: 'watch', peer: 'b', incarnation: 1n }, 0);
    expectRejected(m, { kind: 'watch', peer: 'c', incarnation: 1n }, 0, 'resource-exhausted');
    expect(m.step({ kind: 'watch', peer: 'b', incarnation: 2n }, 0).ignored).toBeNull(); // not a new slot
    m.step({ kind: 'unwatch', peer: 'a' }, 0);
    expect(m.step({ kind: 'watch', peer: 'c', incarnation: 1n }, 0).ignored).toBeNull();
  });
});

describe('detector config', () => {
  it('validates every bound', () => {
    const bad: Array<Partial<typeof DEFAULT_DETECTOR_CONFIG>> = [
      { heartbeatIntervalMs: 0 },
      { minStdDevMs: 0 },
      { acceptablePauseMs: -1 },
      { suspectPhi: 0.5 },
      { failPhi: 5 }, // not above suspectPhi
      { failPhi: 1000 },
      { maxSamples: 1 },
      { maxSamples: 2.5 },
      { maxPeers: 0 },
      { heartbeatIntervalMs: NaN },
    ];
    for (const b of bad) {
      expect(() => validateDetectorConfig({ ...DEFAULT_DETECTOR_CONFIG, ...b }), JSON.stringify(b)).toThrow(GridError);
      expect(() => new Monitor({ ...DEFAULT_DETECTOR_CONFIG, ...b })).toThrow(GridError);
    }
    expect(validateDetectorConfig(DEFAULT_DETECTOR_CONFIG)).toEqual(DEFAULT_DETECTOR_CONFIG);
  });

  it('scales the defaults to another interval with the same shape', () => {
    const c = scaleDetectorConfig(1000);
    expect(c).toMatchObject({ heartbeatIntervalMs: 1000, minStdDevMs: 1000, acceptablePauseMs: 3000, suspectPhi: 5, failPhi: 8 });
    const m = new Monitor(c);
    m.step({ kind: 'watch', peer: 'cluster-1', incarnation: 1n }, 0);
    expect(m.nextDeadlineMs()).toBeCloseTo(10 * SUSPECT_AFTER_MS, 5);
  });
});
