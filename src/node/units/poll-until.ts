import type { TimePorts } from '../../runtime/runtime.js';
import { sleep } from '../../runtime/timers.js';

// The kernel gives no event when a cgroup finishes freezing or a process
// reaches the stopped state, so the freezers poll. A freeze sits inside the
// checkpoint's freeze window, where every millisecond is felt by the
// application: the first checks come back-to-back on setImmediate (well under
// a millisecond each), then the interval backs off to a few milliseconds so
// a slow freeze does not burn a CPU. Monotonic time, so a clock step cannot
// stretch or cut the deadline.

/** Checks answered on setImmediate before backing off to timers. */
const IMMEDIATE_CHECKS = 16;
/** The longest pause between two checks. */
const MAX_INTERVAL_MS = 4;

/**
 * Calls `check` until it returns true or `timeoutMs` has passed; returns
 * whether it succeeded. The last check happens at or after the deadline, so a
 * condition that became true just in time is not reported as a timeout.
 */
export async function pollUntil(time: TimePorts, check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const { clock, timers } = time;
  const deadline = clock.nowMs() + Math.max(0, timeoutMs);
  let intervalMs = 1;
  for (let attempt = 0; ; attempt++) {
    if (await check()) return true;
    if (clock.nowMs() >= deadline) return false;
    if (attempt < IMMEDIATE_CHECKS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    } else {
      const leftMs = deadline - clock.nowMs();
      await sleep(timers, Math.max(0, Math.min(intervalMs, leftMs)));
      intervalMs = Math.min(MAX_INTERVAL_MS, intervalMs * 2);
    }
  }
}
