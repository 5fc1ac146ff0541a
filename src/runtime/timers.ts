import type { TimerPort } from './ports.js';

// Small helpers over the TimerPort for shells that await a delay or repeat
// an action; the port itself only arms one-shot timers.

/** Resolves after ms (a shell's pause between retries). */
export function sleep(timers: TimerPort, ms: number): Promise<void> {
  return new Promise((resolve) => void timers.setTimer(resolve, ms));
}

export interface Repeating {
  stop(): void;
}

/**
 * Calls fn every everyMs until stopped, like setInterval: the next call is
 * armed before fn runs, so a slow or throwing fn does not stop the repeat.
 */
export function repeat(timers: TimerPort, everyMs: number, fn: () => void): Repeating {
  let handle: unknown = null;
  let stopped = false;
  const fire = (): void => {
    if (stopped) return;
    handle = timers.setTimer(fire, everyMs);
    fn();
  };
  handle = timers.setTimer(fire, everyMs);
  return {
    stop() {
      stopped = true;
      timers.clearTimer(handle);
    },
  };
}

/** Whether promise settles within ms; the timer is cleared either way. */
export async function settlesWithin(timers: TimerPort, promise: Promise<unknown>, ms: number): Promise<boolean> {
  let handle: unknown = null;
  const timeout = new Promise<false>((resolve) => (handle = timers.setTimer(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    if (handle !== null) timers.clearTimer(handle);
  }
}
