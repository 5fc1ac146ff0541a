import { GridError } from '../common/errors.js';
import type { DetectorConfig } from './config.js';
import {
  type IgnoredReason, Monitor, type MonitorCounters, type MonitorInput, type OwnPause, type PeerStatus, type VerdictChange,
} from './monitor.js';
import type { Clock, TimerPort } from './ports.js';

// The receiver's shell around a Monitor: stamps each input with the clock,
// keeps exactly one timer armed for the monitor's next step (the tick that
// turns silence into a verdict, or, with the own-pause check, the regular
// tick that lets the core tell its own pauses from its peers' silence), and
// hands each verdict change to onChange in the order the core reported it.
// A pause the core excused is reported to onOwnPause (for a log line).
//
// One serial driver (CONVENTIONS §2): every call steps the core to
// completion before anything else happens. onChange may call back into the
// driver (say, unwatch a failed peer); such a step runs at once, and its
// changes are delivered after those already waiting, so the order of
// delivery is the order of the core's outputs. If onChange throws, the
// remaining changes are still delivered and the first error is rethrown
// afterwards (from a timer: an uncaught exception, a bug made loud).
//
// The timer is re-armed after each step, before delivery, and only when the
// new deadline is earlier than the armed one: a heartbeat pushes the
// deadline later, and the earlier timer then just ticks once for nothing and
// re-arms, which is cheaper than clearing a timer on every heartbeat.

export interface MonitorDriverOptions {
  readonly config: DetectorConfig;
  readonly onChange: (change: VerdictChange) => void;
  readonly onOwnPause?: (pause: OwnPause) => void;
  readonly clock: Clock;
  readonly timers: TimerPort;
}

export class MonitorDriver {
  private readonly monitor: Monitor;
  private readonly onChange: (change: VerdictChange) => void;
  private readonly onOwnPause: (pause: OwnPause) => void;
  private readonly clock: Clock;
  private readonly timers: TimerPort;
  private timer: unknown = null;
  private armedAtMs: number | null = null;
  private readonly undelivered: VerdictChange[] = [];
  private delivering = false;
  private stopped = false;

  constructor(options: MonitorDriverOptions) {
    this.monitor = new Monitor(options.config);
    this.onChange = options.onChange;
    this.onOwnPause = options.onOwnPause ?? (() => {});
    this.clock = options.clock;
    this.timers = options.timers;
  }

  watch(peer: string, incarnation: bigint): IgnoredReason | null {
    return this.feed({ kind: 'watch', peer, incarnation });
  }

  unwatch(peer: string): IgnoredReason | null {
    return this.feed({ kind: 'unwatch', peer });
  }

  /** A heartbeat received now; the reason it was ignored lets a handler answer a fenced sender. */
  heartbeat(peer: string, incarnation: bigint, sentSeq?: number): IgnoredReason | null {
    return this.feed(sentSeq === undefined ? { kind: 'heartbeat', peer, incarnation } : { kind: 'heartbeat', peer, incarnation, sentSeq });
  }

  /** Every peer's status now (time is advanced first, so verdicts are fresh). */
  status(): PeerStatus[] {
    this.feed({ kind: 'tick' });
    return this.monitor.status(this.clock.nowMs());
  }

  counters(): MonitorCounters {
    return this.monitor.counters();
  }

  /** When the armed timer fires, or null if none is armed. */
  get timerAtMs(): number | null {
    return this.armedAtMs;
  }

  stop(): void {
    this.stopped = true;
    this.disarm();
  }

  private feed(input: MonitorInput): IgnoredReason | null {
    if (this.stopped) throw new GridError('failed-precondition', 'the failure monitor has stopped');
    const out = this.monitor.step(input, this.clock.nowMs());
    this.rearm();
    if (out.ownPause) this.onOwnPause(out.ownPause);
    this.undelivered.push(...out.changes);
    this.deliver();
    return out.ignored;
  }

  private deliver(): void {
    if (this.delivering) return; // the outer call delivers what this step added
    this.delivering = true;
    let failed = false;
    let firstError: unknown;
    try {
      for (let change = this.undelivered.shift(); change !== undefined; change = this.undelivered.shift()) {
        try {
          this.onChange(change);
        } catch (err) {
          if (!failed) firstError = err;
          failed = true;
        }
      }
    } finally {
      this.delivering = false;
    }
    if (failed) throw firstError;
  }

  private onTimer(): void {
    this.timer = null;
    this.armedAtMs = null;
    if (this.stopped) return;
    this.feed({ kind: 'tick' });
  }

  private rearm(): void {
    const deadline = this.monitor.nextStepMs();
    if (deadline === null) {
      this.disarm();
      return;
    }
    if (this.armedAtMs !== null && this.armedAtMs <= deadline) return;
    this.disarm();
    this.armedAtMs = deadline;
    this.timer = this.timers.setTimer(() => this.onTimer(), deadline - this.clock.nowMs());
  }

  private disarm(): void {
    if (this.timer !== null) this.timers.clearTimer(this.timer);
    this.timer = null;
    this.armedAtMs = null;
  }
}
