// The runtime ports every shell takes through its constructor (CONVENTIONS §3):
// a monotonic clock, one-shot timers and a seeded PRNG. The real ones live in
// real-ports.ts and are created only by the composition roots (run-*.ts);
// the simulator passes its own (src/sim).

export interface Clock {
  /** Monotonic milliseconds (any origin; never goes backwards). */
  nowMs(): number;
  /** Wall-clock milliseconds since the Unix epoch, for records people read. */
  wallMs(): number;
}

export interface TimerPort {
  /** Calls `callback` once, no sooner than `delayMs` from now. */
  setTimer(callback: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
}

export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
}
