import type { Logger } from '../common/log.js';
import type { TimePorts } from './ports.js';
import { startHeartbeats, type HeartbeatLoop } from './heartbeat-loop.js';

// A member's tie to its coordinator (an agent to its cluster, a cluster to
// the grid): register, retrying until the coordinator answers; then
// heartbeat at the interval it asks for; when it no longer knows this
// incarnation (it restarted, or declared us failed), register again. Each
// answer names the jobs whose lease it renews (see lease.ts); onLeases gets
// them with the instant the heartbeat was sent.

export interface Registered {
  heartbeatIntervalMs: number;
  leaseMs: number;
}

export interface BeatAnswer {
  known: boolean;
  leasedJobs: string[];
}

export interface MembershipOptions {
  register(): Promise<Registered>;
  /** Resolves known=false when the coordinator does not know this member. */
  beat(seq: number, timeoutMs: number): Promise<BeatAnswer>;
  onRegistered?(r: Registered): void;
  onLeases?(jobIds: string[], sentAtMs: number): void;
  log: Logger;
  time: TimePorts;
  retryMs?: number;
}

export function startMembership(o: MembershipOptions): { stop(): void } {
  const { clock, timers } = o.time;
  let loop: HeartbeatLoop | null = null;
  let stopped = false;
  let retry: unknown = null;
  const register = (): void => {
    if (stopped) return;
    o.register().then(
      (r) => {
        if (stopped) return;
        o.log.info({ heartbeatIntervalMs: r.heartbeatIntervalMs, leaseMs: r.leaseMs }, 'registered with the coordinator');
        o.onRegistered?.(r);
        loop?.stop();
        loop = startHeartbeats({
          intervalMs: r.heartbeatIntervalMs,
          clock,
          timers,
          send: async (seq) => {
            const sentAt = clock.nowMs();
            const answer = await o.beat(seq, r.heartbeatIntervalMs * 5);
            if (stopped) return;
            if (!answer.known) {
              loop?.stop();
              loop = null;
              register();
              return;
            }
            o.onLeases?.(answer.leasedJobs, sentAt);
          },
          onError: () => undefined, // a missed beat is the detector's business
        });
      },
      (err: unknown) => {
        o.log.warn({ err: String(err) }, 'coordinator not reachable; retrying');
        retry = timers.setTimer(register, o.retryMs ?? 200);
      },
    );
  };
  register();
  return {
    stop() {
      stopped = true;
      if (retry !== null) timers.clearTimer(retry);
      loop?.stop();
    },
  };
}
