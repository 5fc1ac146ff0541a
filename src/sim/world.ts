import { SeededRng } from '../runtime/rng.js';
import type { Clock, TimerPort } from '../runtime/ports.js';

// The simulator's world: one virtual clock and one event queue, ordered by
// (time, insertion), so a run is a pure function of its seed. Every member
// (grid, cluster, agent) is a SimProcess with an incarnation: its timers and
// deliveries are dropped once it crashes, and deferred while it is paused
// (a GC or VM pause: the process does nothing, the world goes on).

interface Event { at: number; seq: number; run: () => void }

const MAX_EVENTS_AT_ONE_INSTANT = 10_000;

/** A binary min-heap on (at, seq). */
class EventQueue {
  private readonly items: Event[] = [];
  get size(): number { return this.items.length; }
  push(e: Event): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): Event | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

export class World {
  nowMs = 0;
  events = 0;
  private seq = 0;
  private sameInstant = 0;
  private readonly queue = new EventQueue();
  readonly rng: SeededRng;
  readonly clock: Clock;

  constructor(readonly seed: number) {
    this.rng = new SeededRng(seed);
    this.clock = { nowMs: () => this.nowMs, wallMs: () => 1_700_000_000_000 + this.nowMs };
  }

  at(atMs: number, run: () => void): void {
    this.queue.push({ at: Math.max(this.nowMs, Math.floor(atMs)), seq: this.seq++, run });
  }

  after(delayMs: number, run: () => void): void {
    this.at(this.nowMs + delayMs, run);
  }

  /** Runs events until the queue is empty, untilMs passes, or stop() says so. */
  run(untilMs: number, stop: () => boolean, afterEvent: () => void): void {
    for (;;) {
      const e = this.queue.pop();
      if (!e) return;
      if (e.at > untilMs) {
        this.queue.push(e);
        this.nowMs = untilMs;
        return;
      }
      if (e.at === this.nowMs) {
        this.sameInstant += 1;
        // A core whose deadline never moves past now spins the world in place.
        if (this.sameInstant > MAX_EVENTS_AT_ONE_INSTANT) throw new Error(`livelock: over ${MAX_EVENTS_AT_ONE_INSTANT} events at ${this.nowMs} ms`);
      } else {
        this.sameInstant = 0;
      }
      this.nowMs = e.at;
      this.events += 1;
      e.run();
      afterEvent();
      if (stop()) return;
    }
  }
}

/** A member process: crash ends an incarnation; pause defers its events. */
export class SimProcess {
  incarnation = 0n;
  alive = false;
  pausedUntilMs = 0;

  constructor(readonly id: string, readonly world: World) {}

  /** Runs fn as this process, later: dropped if it crashed meanwhile, deferred while it is paused. */
  deliver(delayMs: number, fn: () => void): void {
    const inc = this.incarnation;
    const go = (): void => {
      if (!this.alive || this.incarnation !== inc) return;
      if (this.world.nowMs < this.pausedUntilMs) return this.world.at(this.pausedUntilMs, go);
      fn();
    };
    this.world.after(delayMs, go);
  }

  timers(): TimerPort {
    return {
      setTimer: (cb, delayMs) => {
        const handle = { cancelled: false };
        this.deliver(Math.max(0, Math.ceil(delayMs)), () => { if (!handle.cancelled) cb(); });
        return handle;
      },
      clearTimer: (h) => { (h as { cancelled: boolean }).cancelled = true; },
    };
  }

  start(): void {
    this.incarnation += 1n;
    this.alive = true;
    this.pausedUntilMs = 0;
  }

  crash(): void {
    this.alive = false;
  }

  runnable(): boolean {
    return this.alive && this.world.nowMs >= this.pausedUntilMs;
  }
}
