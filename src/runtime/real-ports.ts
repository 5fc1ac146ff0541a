import type { Clock, Rng, TimerPort } from './ports.js';

// The real ports: only the composition roots create them (ARCHITECTURE §8).

export const realClock: Clock = {
  nowMs: () => performance.now(),
  wallMs: () => Date.now(),
};

/** setTimeout takes at most 2^31 - 1 ms; longer delays fire early, and callers re-arm. */
const MAX_TIMER_DELAY_MS = 0x7fffffff;

export const realTimers: TimerPort = {
  setTimer: (callback, delayMs) => setTimeout(callback, Math.min(MAX_TIMER_DELAY_MS, Math.max(0, Math.ceil(delayMs)))),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export const realRng: Rng = {
  next: () => Math.random(),
  int: (n) => Math.floor(Math.random() * n),
};
