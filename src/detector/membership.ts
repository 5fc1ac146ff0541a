import type { Logger } from '../common/log.js';
import type { TimePorts } from './ports.js';
import { startHeartbeats, type HeartbeatLoop } from './heartbeat-loop.js';
import { backoffDelayMs, DEFAULT_BACKOFF, type BackoffConfig } from './backoff.js';
import type { Rng } from '../runtime/ports.js';

// A member's tie to its coordinator (an agent to its cluster, a cluster to
// the grid): register, retrying until the coordinator answers; then
// heartbeat at the interval it asks for; when it no longer knows this
// incarnation (it restarted, or declared us failed), register again. Each
// answer names the jobs whose lease it renews (see lease.ts); onLeases gets
// them with the instant the heartbeat was sent.
//
// What the operator reads (issue 8: a retry line every 200 ms for ever, and
// silence when a registered member's coordinator died): registration is
// retried with exponential backoff and jitter (backoff.ts), told once when
// it starts failing and then at most once per reminderMs; once registered,
// the member says when its coordinator stops answering heartbeats
// (lostAfterBeats failed in a row) and when it answers again.

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
  /** The jitter's source (the runtime's); absent: no jitter. */
  rng?: Rng;
  backoff?: BackoffConfig;
  /** Failed beats in a row after which the coordinator is said to have stopped answering. */
  lostAfterBeats?: number;
  /** How often a failure that goes on is told again. */
  reminderMs?: number;
}

const LOST_AFTER_BEATS = 3;
const REMINDER_MS = 30_000;

export function startMembership(o: MembershipOptions): { stop(): void } {
  const { clock, timers } = o.time;
  const backoff = o.backoff ?? DEFAULT_BACKOFF;
  const reminderMs = o.reminderMs ?? REMINDER_MS;
  const lostAfter = o.lostAfterBeats ?? LOST_AFTER_BEATS;
  let loop: HeartbeatLoop | null = null;
  let stopped = false;
  let retry: unknown = null;
  /** Failed registrations in a row, when the first failed, and when one was last told. */
  let attempts = 0;
  let failingSinceMs = 0;
  let toldAtMs = 0;
  const registerFailed = (err: unknown): void => {
    attempts += 1;
    const now = clock.nowMs();
    const delayMs = Math.round(backoffDelayMs(attempts, backoff, o.rng ?? null));
    if (attempts === 1) {
      failingSinceMs = now;
      toldAtMs = now;
      o.log.warn({ err: String(err), retryInMs: delayMs, maxRetryMs: backoff.capMs }, 'coordinator not reachable; retrying with backoff');
    } else if (now - toldAtMs >= reminderMs) {
      toldAtMs = now;
      o.log.warn({ err: String(err), attempts, failingForMs: Math.round(now - failingSinceMs), retryInMs: delayMs }, 'coordinator still not reachable; retrying');
    } else {
      o.log.debug({ err: String(err), attempts, retryInMs: delayMs }, 'coordinator not reachable; retrying');
    }
    retry = timers.setTimer(register, delayMs);
  };
  const register = (): void => {
    retry = null;
    if (stopped) return;
    o.register().then(
      (r) => {
        if (stopped) return;
        o.log.info({ heartbeatIntervalMs: r.heartbeatIntervalMs, leaseMs: r.leaseMs, ...(attempts > 0 ? { failedAttempts: attempts } : {}) }, 'registered with the coordinator');
        attempts = 0;
        o.onRegistered?.(r);
        loop?.stop();
        loop = beatLoop(r);
      },
      (err: unknown) => {
        if (!stopped) registerFailed(err);
      },
    );
  };
  const beatLoop = (r: Registered): HeartbeatLoop => {
    /** Failed beats in a row, since when, and whether the loss was told (and when last). */
    let failed = 0;
    let lastAnswerMs = clock.nowMs();
    let lostToldAtMs: number | null = null;
    return startHeartbeats({
      intervalMs: r.heartbeatIntervalMs,
      clock,
      timers,
      send: async (seq) => {
        const sentAt = clock.nowMs();
        const answer = await o.beat(seq, r.heartbeatIntervalMs * 5);
        if (stopped) return;
        if (lostToldAtMs !== null) o.log.info({ silentForMs: Math.round(clock.nowMs() - lastAnswerMs) }, 'coordinator answers heartbeats again');
        failed = 0;
        lostToldAtMs = null;
        lastAnswerMs = clock.nowMs();
        if (!answer.known) {
          loop?.stop();
          loop = null;
          o.log.info('the coordinator does not know this incarnation (it restarted, or declared this member failed): registering again');
          register();
          return;
        }
        o.onLeases?.(answer.leasedJobs, sentAt);
      },
      // A missed beat is the detector's business; a run of them is the operator's.
      onError: (err) => {
        failed += 1;
        const now = clock.nowMs();
        if (failed < lostAfter) return;
        if (lostToldAtMs === null || now - lostToldAtMs >= reminderMs) {
          o.log.warn({ err: String(err), failedBeats: failed, silentForMs: Math.round(now - lastAnswerMs) }, lostToldAtMs === null ? 'coordinator stopped answering heartbeats' : 'coordinator still not answering heartbeats');
          lostToldAtMs = now;
        }
      },
    });
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
