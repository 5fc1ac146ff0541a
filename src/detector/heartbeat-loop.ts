import { invalidArgument } from '../common/errors.js';
import type { Clock, TimerPort } from './ports.js';

// The sender's shell: calls send(seq) every intervalMs, for a node agent
// heartbeating its cluster coordinator or a coordinator heartbeating the grid.
//
// Beats are numbered from 1 and fall due at start + (seq - 1) * intervalMs,
// so a slow tick does not drift the schedule. At most one send is in flight:
// a beat that falls due while the previous send is still pending is skipped
// and counted, and so are beats that a stalled event loop let pass. Skipped
// beats still consume their number, so the receiver sees the gap.
//
// The loop sets no deadline of its own: `send` must carry one (a gRPC
// deadline of a few intervals). A send that hangs stops the heartbeats, which
// is what the receiver should see: a sender that cannot reach it is, for the
// receiver, as good as dead. Send errors are environment failures: counted
// and passed to onError, never thrown.

export interface HeartbeatLoopOptions {
  readonly intervalMs: number;
  readonly send: (seq: number) => Promise<void>;
  readonly onError?: (err: unknown) => void;
  readonly clock: Clock;
  readonly timers: TimerPort;
}

export interface HeartbeatStats {
  /** Sends started. */
  readonly sent: number;
  /** Beats not sent: the previous send was still in flight, or the timer ran late. */
  readonly skipped: number;
  /** Sends that rejected (or threw). */
  readonly failed: number;
  /** The last beat number handled (sent or skipped). */
  readonly lastSeq: number;
}

export interface HeartbeatLoop {
  stop(): void;
  stats(): HeartbeatStats;
}

export function startHeartbeats(options: HeartbeatLoopOptions): HeartbeatLoop {
  const { intervalMs, send, onError } = options;
  if (typeof intervalMs !== 'number' || !Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw invalidArgument(`bad heartbeat interval ${String(intervalMs)} ms`);
  }
  const { clock, timers } = options;
  const startMs = clock.nowMs();
  let seq = 0;
  let inFlight = false;
  let stopped = false;
  let timer: unknown = null;
  let sent = 0;
  let skipped = 0;
  let failed = 0;

  const sendBeat = (beat: number): void => {
    inFlight = true;
    sent += 1;
    let pending: Promise<void>;
    try {
      pending = Promise.resolve(send(beat));
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      () => {
        inFlight = false;
      },
      (err: unknown) => {
        inFlight = false;
        failed += 1;
        if (!stopped) onError?.(err);
      },
    );
  };

  const onBeat = (): void => {
    timer = null;
    if (stopped) return;
    const due = Math.floor((clock.nowMs() - startMs) / intervalMs) + 1;
    if (due > seq) {
      skipped += due - seq - 1; // beats a late timer let pass
      seq = due;
      if (inFlight) skipped += 1;
      else sendBeat(seq);
    }
    // Early or late, wait for the next beat's own instant.
    timer = timers.setTimer(onBeat, startMs + seq * intervalMs - clock.nowMs());
  };

  onBeat(); // the first beat goes out at once
  return {
    stop(): void {
      stopped = true;
      if (timer !== null) timers.clearTimer(timer);
      timer = null;
    },
    stats: () => ({ sent, skipped, failed, lastSeq: seq }),
  };
}
