// The two ports the detector's shells need (CONVENTIONS §3): a monotonic
// clock in milliseconds and one-shot timers. The real ones wrap
// performance.now() and setTimeout; tests and the simulator pass their own.

export interface Clock {
  /** Monotonic milliseconds (any origin; never goes backwards). */
  nowMs(): number;
}

export interface TimerPort {
  /** Calls `callback` once, no sooner than `delayMs` from now. */
  setTimer(callback: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
}

export const realClock: Clock = {
  nowMs: () => performance.now(),
};

/** setTimeout takes at most 2^31 - 1 ms; longer delays fire early, and callers re-arm. */
const MAX_TIMER_DELAY_MS = 0x7fffffff;

export const realTimers: TimerPort = {
  setTimer: (callback, delayMs) => setTimeout(callback, Math.min(MAX_TIMER_DELAY_MS, Math.max(0, Math.ceil(delayMs)))),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};
