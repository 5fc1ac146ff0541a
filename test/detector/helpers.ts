import { Monitor, type MonitorInput, type VerdictChange } from '../../src/detector/monitor.js';
import type { Clock, TimerPort } from '../../src/detector/ports.js';

/** mulberry32: a small seeded PRNG, so every schedule replays from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Drives a monitor the way a shell does: before each input, ticks at every
 * nextDeadlineMs() that falls due, then steps the input at its time.
 */
export class ShellLikeDriver {
  readonly changes: VerdictChange[] = [];
  constructor(readonly monitor: Monitor) {}

  advanceTo(nowMs: number): void {
    for (let d = this.monitor.nextDeadlineMs(); d !== null && d <= nowMs; d = this.monitor.nextDeadlineMs()) {
      this.changes.push(...this.monitor.step({ kind: 'tick' }, d).changes);
    }
  }

  feed(input: MonitorInput, nowMs: number): ReturnType<Monitor['step']> {
    this.advanceTo(nowMs);
    const out = this.monitor.step(input, nowMs);
    this.changes.push(...out.changes);
    this.monitor.checkInvariants();
    return out;
  }
}

/** Manual time for the shells: timers fire only when the test advances time. */
export class FakeTime implements Clock, TimerPort {
  private now: number;
  private nextId = 1;
  private readonly timers = new Map<number, { atMs: number; callback: () => void }>();

  constructor(startMs = 0) {
    this.now = startMs;
  }

  nowMs(): number {
    return this.now;
  }

  /** Wall time moves with the fake clock (from the epoch): enough for what these tests read. */
  wallMs(): number {
    return this.now;
  }

  setTimer(callback: () => void, delayMs: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { atMs: this.now + Math.max(0, delayMs), callback });
    return id;
  }

  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Moves time forward, firing due timers in order at their own instants. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    await flushPromises();
    for (;;) {
      let first: [number, { atMs: number; callback: () => void }] | undefined;
      for (const entry of this.timers) if (first === undefined || entry[1].atMs < first[1].atMs) first = entry;
      if (first === undefined || first[1].atMs > end) break;
      this.timers.delete(first[0]);
      this.now = Math.max(this.now, first[1].atMs);
      first[1].callback();
      await flushPromises();
    }
    this.now = end;
    await flushPromises();
  }

  /** Sets the clock without firing timers (a stalled event loop). */
  jump(ms: number): void {
    this.now += ms;
  }
}

export async function flushPromises(): Promise<void> {
  for (let i = 0; i < 10; i += 1) await Promise.resolve();
}
