import { status as grpcStatus } from '@grpc/grpc-js';
import type { WatchEvent } from '../gen/gridckpt/v1/common.js';
import type { WatchOptions, WatchStream } from './watch-client.js';
import type { TimePorts } from '../runtime/runtime.js';
import { sleep } from '../runtime/timers.js';

// Waiting for a condition on a service's status without polling it: read the
// status once the service has subscribed us to its Watch stream, then again
// only when it reports an event. The status read decides (the event only
// says "look again"), so the condition is exactly what it was with polling.
// A stream that ends (the service restarted, or we fell behind) is opened
// again, waiting for the service to be reachable.

export interface Watchable<S> {
  watch(o: WatchOptions): WatchStream;
  status(): Promise<S>;
}

/** Between a failed stream and the next one. */
const REOPEN_PAUSE_MS = 50;

const bigintJson = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : x));

/** A promise that may lose a race: its later failure must not go unhandled. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/**
 * Resolves with the first status read that satisfies ok; rejects after
 * deadlineMs naming what and the last status. ok may look further (at the
 * processes the status names, say) and answer later; an error it throws or
 * rejects with ends the wait with that error.
 */
export async function untilStatus<S>(
  time: TimePorts, c: Watchable<S>, ok: (s: S) => boolean | Promise<boolean>, what: string, deadlineMs: number,
): Promise<S> {
  const { clock, timers } = time;
  const endUnixMs = clock.wallMs() + deadlineMs;
  let last: S | null = null;
  const timedOut = () => new Error(`timed out after ${deadlineMs} ms waiting for ${what}: ${bigintJson(last)}`);
  let timer: unknown = null;
  let expired = false;
  const deadline = new Promise<never>((_r, reject) => {
    timer = timers.setTimer(() => {
      expired = true;
      reject(timedOut());
    }, deadlineMs);
  });
  deadline.catch(() => undefined);
  try {
    for (;;) {
      const w = c.watch({ waitForReady: true, deadlineUnixMs: endUnixMs });
      try {
        await Promise.race([w.subscribed, deadline]);
        const events = w.events()[Symbol.asyncIterator]();
        for (;;) {
          last = await Promise.race([quiet(c.status()), deadline]);
          if (await Promise.race([quiet(Promise.resolve(ok(last))), deadline])) return last;
          const next: IteratorResult<WatchEvent> = await Promise.race([quiet(events.next()), deadline]);
          if (next.done) break;
        }
      } catch (err) {
        const code = (err as { code?: number }).code;
        if (expired || clock.wallMs() >= endUnixMs) throw timedOut();
        // Restarting, unreachable for a moment, or cut off for being behind: watch again. Anything else is a real error.
        if (code !== grpcStatus.UNAVAILABLE && code !== grpcStatus.RESOURCE_EXHAUSTED && code !== grpcStatus.CANCELLED) throw err;
        // A service that is stopping refuses at once: do not spin on it (waitForReady covers one that is down).
        await Promise.race([sleep(timers, REOPEN_PAUSE_MS), deadline]);
      } finally {
        w.cancel();
      }
    }
  } finally {
    if (timer !== null) timers.clearTimer(timer);
  }
}
