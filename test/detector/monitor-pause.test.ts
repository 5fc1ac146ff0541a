import { describe, expect, it } from 'vitest';
import { GridError } from '../../src/common/errors.js';
import { DEFAULT_DETECTOR_CONFIG, scaleDetectorConfig, validateDetectorConfig } from '../../src/detector/config.js';
import { Monitor, type MonitorInput, type VerdictChange } from '../../src/detector/monitor.js';
import { PhiAccrual } from '../../src/detector/phi-accrual.js';
import { SelfStepper } from './self-stepper.js';

// The monitor's own pauses (monitor.ts M9-M11), exact outputs. The config is
// what the processes run: the defaults' shape at 100 ms with the own-pause
// check (a step every 100 ms; a gap above 400 ms is a pause, of which only
// the last 100 ms count as silence). Crossing instants for a punctual peer
// are the hand-computed ones of monitor.test.ts.

const SUSPECT_AFTER_MS = 811.91914909627255203;
const FAIL_AFTER_MS = 922.59866440935634263;
const CONFIG = scaleDetectorConfig(100);

const hb = (peer: string): MonitorInput => ({ kind: 'heartbeat', peer, incarnation: 1n });
const watch = (peer: string): MonitorInput => ({ kind: 'watch', peer, incarnation: 1n });

function change(peer: string, from: string, to: string, phi: number, silenceMs: number, atMs: number) {
  return { peer, incarnation: 1n, from, to, phi: expect.closeTo(phi, 9), silenceMs: expect.closeTo(silenceMs, 6), atMs: expect.closeTo(atMs, 6) };
}

/** Feeds every 100 ms beats of [peer, first, last], merged in time order. */
function feedBeats(s: SelfStepper, runs: Array<[string, number, number]>): void {
  const beats: Array<[number, string]> = [];
  for (const [peer, first, last] of runs) for (let t = first; t <= last; t += 100) beats.push([t, peer]);
  beats.sort((x, y) => x[0] - y[0]);
  for (const [t, peer] of beats) s.feed(hb(peer), t);
}

const pauses = (s: SelfStepper) => s.outputs.flatMap((o) => (o.out.ownPause ? [o.out.ownPause] : []));
const verdicts = (m: Monitor, nowMs: number) => m.status(nowMs).map((s) => `${s.peer}:${s.verdict}`);

describe('Monitor: its own pause is not its peers\' silence (M9)', () => {
  it('a 3 s stop of the monitor with three punctual peers changes no verdict; without the check all three fail at once', () => {
    const s = new SelfStepper(new Monitor(CONFIG));
    for (const p of ['a', 'b', 'c']) s.feed(watch(p), 0);
    const beat = (fromMs: number, toMs: number) => {
      for (let t = fromMs; t <= toMs; t += 100) ['a', 'b', 'c'].forEach((p, i) => s.feed(hb(p), t + 30 * i));
    };
    beat(100, 2000);
    s.pause(3000); // SIGSTOP at 2060, after c's last beat; SIGCONT at 5060
    s.runTo(s.nowMs);
    expect(s.outputs.at(-1)).toEqual({ nowMs: 5060, input: { kind: 'tick' }, out: { changes: [], ignored: null, ownPause: { fromMs: 2060, toMs: 5060 } } });
    beat(5100, 7000);
    expect(s.changes).toEqual([]);
    expect(verdicts(s.monitor, 7060)).toEqual(['a:alive', 'b:alive', 'c:alive']);
    expect(s.monitor.counters()).toMatchObject({ ownPauses: 1, ownPausedMs: 2900, failures: 0, suspicions: 0 });

    // The same steps, the check off (the behaviour this replaced): every peer failed inside the pause.
    const old = new Monitor(DEFAULT_DETECTOR_CONFIG);
    const oldChanges: VerdictChange[] = [];
    for (const { input, nowMs } of s.outputs) oldChanges.push(...old.step(input, nowMs).changes);
    expect(oldChanges.map((c) => `${c.peer}:${c.to}`)).toEqual(['a:suspected', 'b:suspected', 'c:suspected', 'a:failed', 'b:failed', 'c:failed']);
    expect(oldChanges.every((c) => c.atMs > 2060 && c.atMs < 5060)).toBe(true);
  });

  it('a gap of at most selfPauseMs is no pause: crossings apply at their own instants', () => {
    const s = new SelfStepper(new Monitor(CONFIG));
    s.feed(watch('a'), 0);
    for (let t = 100; t <= 1000; t += 100) s.feed(hb('a'), t);
    s.runTo(1200);
    s.pause(400); // a late timer, not a pause
    s.runTo(s.nowMs);
    expect(s.outputs.at(-1)!.out).toEqual({ changes: [], ignored: null });
    s.pause(400);
    s.runTo(s.nowMs);
    expect(s.outputs.at(-1)).toEqual({
      nowMs: 2000,
      input: { kind: 'tick' },
      out: {
        changes: [
          change('a', 'alive', 'suspected', 5, SUSPECT_AFTER_MS, 1000 + SUSPECT_AFTER_MS),
          change('a', 'suspected', 'failed', 8, FAIL_AFTER_MS, 1000 + FAIL_AFTER_MS),
        ],
        ignored: null,
      },
    });
    expect(s.monitor.counters().ownPauses).toBe(0);
  });

  it('does not apply a crossing that fell inside the pause: a suspected peer keeps the grace it had left, less one tick', () => {
    const s = new SelfStepper(new Monitor(CONFIG));
    s.feed(watch('a'), 0);
    s.feed(watch('b'), 0);
    feedBeats(s, [['a', 100, 1000], ['b', 50, 1850]]); // a dies after 1000
    expect(verdicts(s.monitor, 1850)).toEqual(['a:suspected', 'b:alive']); // suspected at 1811.9, before the pause
    s.pause(3000); // its failure (due at 1922.6) falls inside
    s.feed(hb('b'), 4850);
    expect(pauses(s)).toEqual([{ fromMs: 1850, toMs: 4850 }]);
    for (let t = 4950; t <= 6000; t += 100) s.feed(hb('b'), t);
    // 850 ms heard before the pause, and its last 72.6 ms (of the 100 that count): failed at the resume step.
    expect(s.changes).toEqual([
      change('a', 'alive', 'suspected', 5, SUSPECT_AFTER_MS, 1000 + SUSPECT_AFTER_MS),
      change('a', 'suspected', 'failed', 8, FAIL_AFTER_MS, 3900 + FAIL_AFTER_MS),
    ]);
    expect(s.outputs.find((o) => o.out.changes.some((c) => c.to === 'failed'))!.nowMs).toBe(4850);
  });
});

describe('Monitor: a dead peer is still failed promptly (M10)', () => {
  it('right after a pause: silence heard before it counts, the pause does not', () => {
    const s = new SelfStepper(new Monitor(CONFIG));
    s.feed(watch('a'), 0);
    s.feed(watch('b'), 0);
    feedBeats(s, [['a', 100, 1000], ['b', 50, 1450]]); // a dies after 1000
    s.pause(3000);
    s.feed(hb('b'), 4450); // the overdue tick, then b's beat that waited in the socket
    expect(s.outputs.slice(-2).map((o) => o.out)).toEqual([
      { changes: [], ignored: null, ownPause: { fromMs: 1450, toMs: 4450 } },
      { changes: [], ignored: null },
    ]);
    for (let t = 4550; t <= 6000; t += 100) s.feed(hb('b'), t);
    // a was heard silent for 450 ms before the pause, 100 ms of the pause count: failed 372.6 ms after it.
    expect(s.changes).toEqual([
      change('a', 'alive', 'suspected', 5, SUSPECT_AFTER_MS, 3900 + SUSPECT_AFTER_MS),
      change('a', 'suspected', 'failed', 8, FAIL_AFTER_MS, 3900 + FAIL_AFTER_MS),
    ]);
    expect(s.changes[1]!.atMs - 4450).toBeLessThan(FAIL_AFTER_MS);
    expect(verdicts(s.monitor, 6000)).toEqual(['a:failed', 'b:alive']);
  });

  it('repeated pauses delay a verdict, never prevent it: 300 ms runs between 1 s pauses still fail a dead peer', () => {
    // A fresh window at each pause would never get there: 300 ms of silence stays below the 812 ms of a suspicion.
    const s = new SelfStepper(new Monitor(CONFIG));
    s.feed(watch('a'), 0);
    for (let t = 100; t <= 1000; t += 100) s.feed(hb('a'), t); // then silent for good
    for (let cycle = 0; cycle < 6; cycle += 1) {
      s.runTo(s.nowMs + 300);
      s.pause(1000);
    }
    // Counted: 300 ms (first run) + 100 (last tick of the pause) + 300 + 100, then 11.9 ms into
    // the third run it is suspected and 122.6 ms into it failed.
    expect(s.changes).toEqual([
      change('a', 'alive', 'suspected', 5, SUSPECT_AFTER_MS, 2800 + SUSPECT_AFTER_MS),
      change('a', 'suspected', 'failed', 8, FAIL_AFTER_MS, 2800 + FAIL_AFTER_MS),
    ]);
    expect(pauses(s)).toEqual([{ fromMs: 1300, toMs: 2300 }, { fromMs: 2600, toMs: 3600 }]); // none counts once nobody is live
    expect(s.monitor.counters().ownPausedMs).toBe(1800);
  });
  it('a monitor late at every step (a starved process) still fails a dead peer: each step counts one tick', () => {
    const s = new SelfStepper(new Monitor(CONFIG));
    s.feed(watch('a'), 0);
    for (let t = 100; t <= 1000; t += 100) s.feed(hb('a'), t);
    for (let k = 0; k < 12; k += 1) {
      s.pause(500); // every gap is a pause: 400 ms of each excused, 100 counted
      s.runTo(s.nowMs);
    }
    expect(s.changes).toEqual([
      change('a', 'alive', 'suspected', 5, SUSPECT_AFTER_MS, 4600 + SUSPECT_AFTER_MS), // at the 9th step, 5500
      change('a', 'suspected', 'failed', 8, FAIL_AFTER_MS, 5000 + FAIL_AFTER_MS), // at the 10th, 6000
    ]);
    expect(s.monitor.counters().ownPauses).toBe(10);
  });
});

describe('Monitor: nextStepMs (M11) and the sampled window', () => {
  it('asks for a step every selfTickMs while a peer is live; nextDeadlineMs stays the crossing', () => {
    const m = new Monitor(CONFIG);
    expect(m.nextStepMs()).toBeNull();
    m.step(watch('a'), 0);
    expect(m.nextDeadlineMs()).toBeCloseTo(SUSPECT_AFTER_MS, 6);
    expect(m.nextStepMs()).toBe(100);
    m.step({ kind: 'tick' }, 400); // late, yet no pause: 400 ms is selfPauseMs
    expect(m.nextStepMs()).toBe(500);
    m.step({ kind: 'tick' }, 750);
    expect(m.nextStepMs()).toBeCloseTo(SUSPECT_AFTER_MS, 6); // the crossing is sooner than 850
    m.step({ kind: 'tick' }, 900);
    expect(m.nextStepMs()).toBeCloseTo(FAIL_AFTER_MS, 6);
    m.step({ kind: 'tick' }, 1000);
    expect(m.nextStepMs()).toBeNull(); // failed: nothing left to watch for
    const off = new Monitor(DEFAULT_DETECTOR_CONFIG);
    off.step(watch('a'), 0);
    expect(off.nextStepMs()).toBe(off.nextDeadlineMs());
  });

  it('does not sample the interval that spans a pause', () => {
    const s = new SelfStepper(new Monitor(CONFIG));
    s.feed(watch('a'), 0);
    for (let t = 100; t <= 1000; t += 100) s.feed(hb('a'), t);
    const before = s.monitor.status(1000)[0]!;
    expect(before).toMatchObject({ heartbeats: 10, samples: 11, meanIntervalMs: 100 });
    s.pause(2000);
    s.feed(hb('a'), 3050);
    expect(s.monitor.status(3050)[0]).toMatchObject({ verdict: 'alive', heartbeats: 11, samples: 11, meanIntervalMs: 100 });
    s.feed(hb('a'), 3150);
    expect(s.monitor.status(3150)[0]).toMatchObject({ heartbeats: 12, samples: 12, meanIntervalMs: 100 });
  });

  it('PhiAccrual.excuse moves the silence clock and skips one interval (phi-accrual invariant 6)', () => {
    const d = new PhiAccrual(CONFIG, 0);
    for (let t = 0; t <= 1000; t += 100) d.heartbeat(t);
    const phiAt1500 = d.phiAt(1500);
    d.excuse(3000);
    expect(d.lastArrivalMs).toBe(4000);
    expect(d.phiAt(4500)).toBe(phiAt1500);
    expect(d.crossingMs(5)).toBeCloseTo(4000 + SUSPECT_AFTER_MS, 6);
    d.heartbeat(4100);
    expect(d.samples).toBe(12);
    d.heartbeat(4200);
    expect(d.samples).toBe(13);
  });
});

describe('own-pause config', () => {
  it('is off in the bare defaults; scaled, a tick per interval and a pause beyond acceptablePauseMs + one interval; validated', () => {
    expect(DEFAULT_DETECTOR_CONFIG).toMatchObject({ selfTickMs: 0, selfPauseMs: 0 });
    expect(scaleDetectorConfig(100)).toMatchObject({ selfTickMs: 100, selfPauseMs: 400 });
    expect(scaleDetectorConfig(250)).toMatchObject({ selfTickMs: 250, selfPauseMs: 1000 });
    expect(scaleDetectorConfig(20, { acceptablePauseMs: 300 })).toMatchObject({ selfTickMs: 20, selfPauseMs: 320 });
    expect(scaleDetectorConfig(100, { acceptablePauseMs: 0 })).toMatchObject({ selfTickMs: 100, selfPauseMs: 200 });
    expect(scaleDetectorConfig(100, { selfTickMs: 0, selfPauseMs: 0 })).toMatchObject({ selfTickMs: 0, selfPauseMs: 0 });
    for (const bad of [{ selfTickMs: 100, selfPauseMs: 150 }, { selfTickMs: 0, selfPauseMs: 400 }, { selfTickMs: 100, selfPauseMs: 0 }, { selfTickMs: -1, selfPauseMs: 0 }]) {
      expect(() => validateDetectorConfig({ ...DEFAULT_DETECTOR_CONFIG, ...bad }), JSON.stringify(bad)).toThrow(GridError);
    }
  });
});
