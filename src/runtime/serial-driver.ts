import type { Clock, TimerPort } from './ports.js';

// The one serial driver of a pure core (ARCHITECTURE §8, CONVENTIONS §2).
// Inputs are queued and fed to the core one at a time; a step's actions are
// performed in order: every persist, and a wait until all are safe, then
// every send, then every reply. While a step's persists are in flight the
// next input waits, so the core is never re-entered and nothing it says
// leaves the process before what it depends on is durable (the etcd raft
// Ready contract). A persist that fails drops that step's sends and replies
// and feeds the core the failure instead, first in the queue. After each
// step the driver arms one timer at the core's next deadline; its firing is
// an input like any other.

export interface CoreStep<P, S, R> {
  persist: P[];
  send: S[];
  reply: R[];
}

export interface PureCore<I, P, S, R> {
  step(input: I, nowMs: number): CoreStep<P, S, R>;
  /** The earliest instant the core must be ticked at, null if none. */
  nextDeadline(): number | null;
  /** Throws (a bug) if an invariant is broken. */
  checkInvariants(): void;
}

export interface DriverPorts<I, P, S, R> {
  clock: Clock;
  timers: TimerPort;
  /** Makes p durable, then calls done(null), or done(reason) on failure. */
  persist(p: P, done: (error: string | null) => void): void;
  send(s: S): void;
  reply(r: R): void;
  /** The input that tells the core a persist failed. */
  persistFailed(p: P, reason: string): I;
  /** The input, if any, that tells the core a persist is safe (fed after the step's sends). */
  persisted?(p: P): I | null;
  tick(): I;
  /** Called after every step (the simulator checks invariants here). */
  afterStep?(input: I): void;
}

/** Bounded: a driver whose queue grows past this is a bug upstream (CONVENTIONS §6). */
export const MAX_DRIVER_QUEUE = 100_000;

export class SerialDriver<I, P, S, R> {
  private readonly queue: I[] = [];
  private busy = false;
  /** Inside pump(): a nested call (a port that answers synchronously) returns at once and the outer loop goes on. */
  private pumping = false;
  private stopped = false;
  private timer: unknown = null;
  private timerAt: number | null = null;
  steps = 0;

  constructor(readonly core: PureCore<I, P, S, R>, private readonly ports: DriverPorts<I, P, S, R>) {}

  /** A step's persists are in flight: inputs wait. */
  isBusy(): boolean {
    return this.busy;
  }

  /** Queues an input; it is fed once every earlier one has finished. */
  input(i: I): void {
    if (this.stopped) return;
    if (this.queue.length >= MAX_DRIVER_QUEUE) throw new Error(`driver queue over ${MAX_DRIVER_QUEUE}: a caller does not wait`);
    this.queue.push(i);
    this.pump();
  }

  /** Stops feeding the core (a crash or a shutdown); queued inputs are dropped. */
  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    if (this.timer !== null) this.ports.timers.clearTimer(this.timer);
    this.timer = null;
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      this.drain();
    } finally {
      this.pumping = false;
    }
    if (!this.busy) this.arm();
  }

  private drain(): void {
    while (!this.busy && !this.stopped && this.queue.length > 0) {
      const input = this.queue.shift() as I;
      // busy while stepping and delivering: an input a synchronous port queues meanwhile waits its turn.
      this.busy = true;
      let out: CoreStep<P, S, R>;
      try {
        out = this.core.step(input, Math.floor(this.ports.clock.nowMs()));
      } catch (err) {
        // A refused input (a core validates what a caller hands it) changes nothing; the driver goes on.
        this.busy = false;
        throw err;
      }
      this.steps += 1;
      this.ports.afterStep?.(input);
      if (out.persist.length === 0) {
        this.deliver(out);
        this.busy = false;
        continue;
      }
      let pending = out.persist.length;
      const failures: I[] = [];
      for (const p of out.persist) {
        this.ports.persist(p, (error) => {
          if (error !== null) failures.push(this.ports.persistFailed(p, error));
          pending -= 1;
          if (pending > 0) return;
          if (this.stopped) return;
          if (failures.length === 0) {
            this.deliver(out);
            const done: I[] = [];
            for (const x of out.persist) {
              const i = this.ports.persisted?.(x) ?? null;
              if (i !== null) done.push(i);
            }
            this.queue.unshift(...done);
          } else {
            this.queue.unshift(...failures);
          }
          this.busy = false;
          this.arm();
          this.pump();
        });
      }
    }
  }

  private deliver(out: CoreStep<P, S, R>): void {
    for (const s of out.send) this.ports.send(s);
    for (const r of out.reply) this.ports.reply(r);
  }

  private arm(): void {
    if (this.stopped) return;
    const at = this.core.nextDeadline();
    if (at === this.timerAt) return;
    if (this.timer !== null) this.ports.timers.clearTimer(this.timer);
    this.timer = null;
    this.timerAt = at;
    if (at === null) return;
    const delay = Math.max(0, at - this.ports.clock.nowMs());
    this.timer = this.ports.timers.setTimer(() => {
      this.timer = null;
      this.timerAt = null;
      this.input(this.ports.tick());
    }, delay);
  }
}
