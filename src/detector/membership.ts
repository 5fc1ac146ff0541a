import type { Logger } from '../common/log.js';
import { startHeartbeats, type HeartbeatLoop } from './heartbeat-loop.js';

// A member's tie to its coordinator (an agent to its cluster, a cluster to
// the grid): register, retrying until the coordinator answers; then
// heartbeat at the interval it asks for; when it no longer knows this
// incarnation (it restarted, or declared us failed), register again.

export interface MembershipOptions {
  register(): Promise<{ heartbeatIntervalMs: number }>;
  /** Resolves false when the coordinator does not know this member. */
  beat(seq: number, timeoutMs: number): Promise<boolean>;
  log: Logger;
  retryMs?: number;
}

export function startMembership(o: MembershipOptions): { stop(): void } {
  let loop: HeartbeatLoop | null = null;
  let stopped = false;
  let retry: NodeJS.Timeout | null = null;
  const register = (): void => {
    if (stopped) return;
    o.register().then(
      ({ heartbeatIntervalMs }) => {
        if (stopped) return;
        o.log.info({ heartbeatIntervalMs }, 'registered with the coordinator');
        loop?.stop();
        loop = startHeartbeats({
          intervalMs: heartbeatIntervalMs,
          send: async (seq) => {
            const known = await o.beat(seq, heartbeatIntervalMs * 5);
            if (!known && !stopped) {
              loop?.stop();
              loop = null;
              register();
            }
          },
          onError: () => undefined, // a missed beat is the detector's business
        });
      },
      (err: unknown) => {
        o.log.warn({ err: String(err) }, 'coordinator not reachable; retrying');
        retry = setTimeout(register, o.retryMs ?? 200);
      },
    );
  };
  register();
  return {
    stop() {
      stopped = true;
      if (retry) clearTimeout(retry);
      loop?.stop();
    },
  };
}
