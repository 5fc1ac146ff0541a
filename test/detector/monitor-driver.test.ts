import { describe, expect, it } from 'vitest';
import { GridError } from '../../src/common/errors.js';
import { DEFAULT_DETECTOR_CONFIG, scaleDetectorConfig } from '../../src/detector/config.js';
import { startHeartbeats } from '../../src/detector/heartbeat-loop.js';
import { Monitor, type VerdictChange } from '../../src/detector/monitor.js';
import { MonitorDriver } from '../../src/detector/monitor-driver.js';
import { realClock, realTimers } from '../../src/runtime/real-ports.js';
import { FakeTime } from './helpers.js';

const SUSPECT_AFTER_MS = 811.91914909627255203;
const FAIL_AFTER_MS = 922.59866440935634263;

describe('MonitorDriver (fake time)', () => {
  it('arms one timer and reports the verdicts at their instants', async () => {
    const time = new FakeTime(0);
    const seen: Array<{ to: string; atMs: number; reportedAtMs: number }> = [];
    const driver = new MonitorDriver({
      config: DEFAULT_DETECTOR_CONFIG,
      onChange: (c) => seen.push({ to: c.to, atMs: c.atMs, reportedAtMs: time.nowMs() }),
      clock: time,
      timers: time,
    });
    expect(driver.timerAtMs).toBeNull();
    driver.watch('agent-1', 1n);
    for (let t = 100; t <= 2000; t += 100) {
      await time.advance(100);
      expect(driver.heartbeat('agent-1', 1n, t / 100)).toBeNull();
      expect(time.pendingTimers).toBe(1);
    }
    expect(seen).toEqual([]);
    await time.advance(5000);
    expect(seen.map((s) => s.to)).toEqual(['suspected', 'failed']);
    expect(seen[0]!.atMs).toBeCloseTo(2000 + SUSPECT_AFTER_MS, 6);
    expect(seen[1]!.atMs).toBeCloseTo(2000 + FAIL_AFTER_MS, 6);
    for (const s of seen) expect(s.reportedAtMs).toBe(s.atMs); // the timer fired exactly at the deadline
    expect(driver.timerAtMs).toBeNull();
    expect(time.pendingTimers).toBe(0);
    expect(driver.heartbeat('agent-1', 1n, 99)).toBe('failed-incarnation');
    expect(driver.heartbeat('agent-1', 0n)).toBe('stale-incarnation');
    expect(driver.heartbeat('agent-1', 2n)).toBeNull();
    expect(driver.status()).toMatchObject([{ peer: 'agent-1', incarnation: 2n, verdict: 'alive' }]);
    driver.stop();
  });

  it('delivers exactly what the core reports, in order, even when onChange calls back in', async () => {
    const time = new FakeTime(0);
    const delivered: VerdictChange[] = [];
    const core = new Monitor(DEFAULT_DETECTOR_CONFIG); // the same inputs, stepped by hand
    const expected: VerdictChange[] = [];
    const driver: MonitorDriver = new MonitorDriver({
      config: DEFAULT_DETECTOR_CONFIG,
      onChange: (c) => {
        delivered.push(c);
        if (c.to === 'failed') {
          driver.unwatch(c.peer); // give up on it: re-entrant, and must not reorder the rest
          expected.push(...core.step({ kind: 'unwatch', peer: c.peer }, time.nowMs()).changes);
        }
      },
      clock: time,
      timers: time,
    });
    for (const [peer, at] of [['a', 0], ['b', 10], ['c', 20]] as const) {
      await time.advance(at - time.nowMs());
      driver.watch(peer, 1n);
      expected.push(...core.step({ kind: 'watch', peer, incarnation: 1n }, time.nowMs()).changes);
    }
    await time.advance(10_000);
    expected.push(...core.step({ kind: 'tick' }, time.nowMs()).changes);
    expect(delivered).toEqual(expected);
    expect(delivered.map((c) => `${c.peer}:${c.to}`)).toEqual(['a:suspected', 'b:suspected', 'c:suspected', 'a:failed', 'b:failed', 'c:failed']);
    expect(driver.status()).toEqual([]);
    expect(time.pendingTimers).toBe(0);
  });

  it('keeps delivering when onChange throws, then rethrows the first error', async () => {
    const time = new FakeTime(0);
    const seen: string[] = [];
    const driver = new MonitorDriver({
      config: DEFAULT_DETECTOR_CONFIG,
      onChange: (c) => {
        seen.push(`${c.peer}:${c.to}`);
        throw new Error(`handler failed on ${c.peer}`);
      },
      clock: time,
      timers: time,
    });
    driver.watch('a', 1n);
    driver.watch('b', 1n);
    time.jump(5000); // no timer fired: the next call applies every due crossing
    expect(() => driver.status()).toThrow('handler failed on a');
    expect(seen).toEqual(['a:suspected', 'b:suspected', 'a:failed', 'b:failed']);
    expect(time.pendingTimers).toBe(0);
  });

  it('stop() disarms the timer and refuses further inputs', () => {
    const time = new FakeTime(0);
    const driver = new MonitorDriver({ config: DEFAULT_DETECTOR_CONFIG, onChange: () => {}, clock: time, timers: time });
    driver.watch('a', 1n);
    expect(time.pendingTimers).toBe(1);
    driver.stop();
    expect(time.pendingTimers).toBe(0);
    expect(() => driver.heartbeat('a', 1n)).toThrow(GridError);
  });

  it('rejects bad heartbeats from the network with a GridError and changes nothing', () => {
    const time = new FakeTime(0);
    const driver = new MonitorDriver({ config: DEFAULT_DETECTOR_CONFIG, onChange: () => {}, clock: time, timers: time });
    driver.watch('a', 1n);
    const armed = driver.timerAtMs;
    expect(() => driver.heartbeat('../etc', 1n)).toThrow(GridError);
    expect(() => driver.heartbeat('a', -3n)).toThrow(GridError);
    expect(driver.timerAtMs).toBe(armed);
    driver.stop();
  });
});

describe('MonitorDriver + startHeartbeats (real timers, in-process)', () => {
  it('heartbeats every 20 ms keep the peer alive; once they stop, failed is reported within a bound', async () => {
    // The defaults' shape at 20 ms, with a wider floor and pause so a busy CI
    // machine's scheduling hiccups are not taken for a death: failed ~580 ms after the last beat.
    const config = scaleDetectorConfig(20, { minStdDevMs: 50, acceptablePauseMs: 300 });
    let failedAt = 0;
    const changes: VerdictChange[] = [];
    let onFailed: (c: VerdictChange) => void = () => {};
    const failed = new Promise<VerdictChange>((resolve) => (onFailed = resolve));
    const driver = new MonitorDriver({
      config,
      onChange: (c) => {
        changes.push(c);
        if (c.to === 'failed') {
          failedAt = performance.now();
          onFailed(c);
        }
      },
      clock: realClock,
      timers: realTimers,
    });
    driver.watch('agent-1', 1n);
    let onTenth: () => void = () => {};
    const tenBeats = new Promise<void>((resolve) => (onTenth = resolve));
    let received = 0;
    const sender = startHeartbeats({
      intervalMs: 20,
      send: async (seq) => {
        expect(driver.heartbeat('agent-1', 1n, seq)).toBeNull();
        received += 1;
        if (received === 10) onTenth();
      },
      clock: realClock,
      timers: realTimers,
    });
    try {
      await tenBeats;
      sender.stop();
      const stoppedAt = performance.now();
      const change = await failed;
      expect(change).toMatchObject({ peer: 'agent-1', incarnation: 1n, from: 'suspected', to: 'failed' });
      expect(changes.map((c) => c.to)).toEqual(['suspected', 'failed']);
      expect(failedAt - stoppedAt).toBeLessThan(2000);
      expect(change.silenceMs).toBeGreaterThan(400);
      expect(driver.status()[0]).toMatchObject({ verdict: 'failed' });
    } finally {
      sender.stop();
      driver.stop();
    }
  });
});
