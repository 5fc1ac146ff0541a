import { describe, expect, it } from 'vitest';
import { GridError } from '../../src/common/errors.js';
import { startHeartbeats } from '../../src/detector/heartbeat-loop.js';
import { FakeTime, flushPromises } from './helpers.js';

describe('startHeartbeats (fake time)', () => {
  it('sends beat 1 at once, then one beat per interval on a fixed schedule', async () => {
    const time = new FakeTime(5000);
    const sends: Array<[number, number]> = [];
    const loop = startHeartbeats({
      intervalMs: 100,
      send: async (seq) => void sends.push([seq, time.nowMs()]),
      clock: time,
      timers: time,
    });
    await time.advance(1000);
    expect(sends).toEqual(Array.from({ length: 11 }, (_, i) => [i + 1, 5000 + i * 100]));
    expect(loop.stats()).toEqual({ sent: 11, skipped: 0, failed: 0, lastSeq: 11 });
    expect(time.pendingTimers).toBe(1);
    loop.stop();
    expect(time.pendingTimers).toBe(0);
    await time.advance(1000);
    expect(sends).toHaveLength(11);
  });

  it('never has two sends in flight: a slow send skips beats, and counts them', async () => {
    const time = new FakeTime(0);
    let inFlight = 0;
    let maxInFlight = 0;
    const seqs: number[] = [];
    const loop = startHeartbeats({
      intervalMs: 100,
      send: (seq) => {
        seqs.push(seq);
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        const slow = seq === 2 ? 250 : 10; // beat 2 takes 250 ms: beats 3 and 4 fall due meanwhile
        return new Promise<void>((resolve) =>
          time.setTimer(() => {
            inFlight -= 1;
            resolve();
          }, slow),
        );
      },
      clock: time,
      timers: time,
    });
    await time.advance(600);
    expect(maxInFlight).toBe(1);
    expect(seqs).toEqual([1, 2, 5, 6, 7]); // the receiver sees the gap
    expect(loop.stats()).toEqual({ sent: 5, skipped: 2, failed: 0, lastSeq: 7 });
    loop.stop();
  });

  it('counts beats a stalled event loop let pass, and keeps the schedule', async () => {
    const time = new FakeTime(0);
    const seqs: Array<[number, number]> = [];
    const loop = startHeartbeats({ intervalMs: 100, send: async (seq) => void seqs.push([seq, time.nowMs()]), clock: time, timers: time });
    await time.advance(100);
    time.jump(450); // the timer for beat 3 (at 200) fires late, at 550
    await time.advance(100);
    expect(seqs).toEqual([
      [1, 0],
      [2, 100],
      [6, 550], // beats 3, 4 and 5 passed during the stall
      [7, 600], // back on the original schedule
    ]);
    expect(loop.stats()).toEqual({ sent: 4, skipped: 3, failed: 0, lastSeq: 7 });
    loop.stop();
  });

  it('counts failed sends (rejected or thrown) and reports them to onError', async () => {
    const time = new FakeTime(0);
    const errors: unknown[] = [];
    const loop = startHeartbeats({
      intervalMs: 100,
      send: (seq) => {
        if (seq === 2) throw new Error('sync boom');
        return seq === 3 ? Promise.reject(new Error('unavailable')) : Promise.resolve();
      },
      onError: (err) => errors.push((err as Error).message),
      clock: time,
      timers: time,
    });
    await time.advance(400);
    expect(errors).toEqual(['sync boom', 'unavailable']);
    expect(loop.stats()).toEqual({ sent: 5, skipped: 0, failed: 2, lastSeq: 5 });
    loop.stop();
  });

  it('stop() while a send is in flight sends nothing more and reports no error', async () => {
    const time = new FakeTime(0);
    let reject: (err: Error) => void = () => {};
    const errors: unknown[] = [];
    const loop = startHeartbeats({
      intervalMs: 100,
      send: () => new Promise<void>((_, r) => (reject = r)),
      onError: (err) => errors.push(err),
      clock: time,
      timers: time,
    });
    loop.stop();
    reject(new Error('late'));
    await flushPromises();
    await time.advance(1000);
    expect(errors).toEqual([]);
    expect(loop.stats()).toEqual({ sent: 1, skipped: 0, failed: 1, lastSeq: 1 });
  });

  it('rejects a bad interval', () => {
    const time = new FakeTime(0);
    for (const intervalMs of [0, -1, NaN, Infinity]) {
      expect(() => startHeartbeats({ intervalMs, send: async () => {}, clock: time, timers: time })).toThrow(GridError);
    }
  });
});
