import { describe, expect, it } from 'vitest';
import { scaleDetectorConfig } from '../../src/detector/config.js';
import { MonitorDriver } from '../../src/detector/monitor-driver.js';
import type { OwnPause, VerdictChange } from '../../src/detector/monitor.js';
import { FakeTime } from './helpers.js';

// The driver with the own-pause check (what cluster and grid run): its one
// timer is armed at the core's nextStepMs, so the core is stepped every
// 100 ms while a peer is live, and a stalled process (time jumps, no timer
// fires) is reported as its own pause, not as its peers' deaths.

const SUSPECT_AFTER_MS = 811.91914909627255203;
const FAIL_AFTER_MS = 922.59866440935634263;

describe('MonitorDriver: the process stops for 3 s', () => {
  it('convicts no peer for it, says so once, and still fails the peer that died, at its instant', async () => {
    const time = new FakeTime(0);
    const seen: Array<VerdictChange & { reportedAtMs: number }> = [];
    const paused: OwnPause[] = [];
    const driver = new MonitorDriver({
      config: scaleDetectorConfig(100),
      onChange: (c) => seen.push({ ...c, reportedAtMs: time.nowMs() }),
      onOwnPause: (p) => paused.push(p),
      clock: time,
      timers: time,
    });
    driver.watch('a', 1n);
    driver.watch('b', 1n);
    let seq = 0;
    for (let t = 100; t <= 2000; t += 100) {
      await time.advance(100);
      seq += 1;
      expect(driver.heartbeat('a', 1n, seq)).toBeNull();
      expect(driver.heartbeat('b', 1n, seq)).toBeNull();
      expect(time.pendingTimers).toBe(1);
    }
    time.jump(3000); // SIGSTOP: no timer fires, the clock runs on
    seq += 1;
    expect(driver.heartbeat('a', 1n, seq)).toBeNull(); // a's beat that waited: a is not failed
    expect(paused).toEqual([{ fromMs: 2000, toMs: 5000 }]);
    for (let t = 5100; t <= 7000; t += 100) {
      await time.advance(100);
      seq += 1;
      expect(driver.heartbeat('a', 1n, seq)).toBeNull(); // b died with the stop
    }
    // b's last beat at 2000, all but the last 100 ms of the stop excused: as if it died at 4900.
    expect(seen.map((c) => ({ peer: c.peer, to: c.to, atMs: c.atMs, reportedAtMs: c.reportedAtMs }))).toEqual([
      { peer: 'b', to: 'suspected', atMs: expect.closeTo(4900 + SUSPECT_AFTER_MS, 6), reportedAtMs: expect.closeTo(4900 + SUSPECT_AFTER_MS, 6) },
      { peer: 'b', to: 'failed', atMs: expect.closeTo(4900 + FAIL_AFTER_MS, 6), reportedAtMs: expect.closeTo(4900 + FAIL_AFTER_MS, 6) },
    ]);
    expect(driver.status().map((s) => `${s.peer}:${s.verdict}`)).toEqual(['a:alive', 'b:failed']);
    expect(driver.counters()).toMatchObject({ ownPauses: 1, ownPausedMs: 2900, failures: 1 });
    expect(paused).toHaveLength(1);
    driver.stop();
    expect(time.pendingTimers).toBe(0);
  });
});
