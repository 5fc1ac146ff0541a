import { JobLeases } from './lease.js';
import type { TimePorts } from './ports.js';

// The shell around a holder's JobLeases: a timer set to the next expiry,
// and the callback that fences a job whose lease ran out.

export class LeaseKeeper {
  readonly leases: JobLeases;
  private timer: unknown = null;
  private stopped = false;

  constructor(leaseMs: number, private readonly onLapse: (jobId: string) => void, private readonly time: TimePorts) {
    this.leases = new JobLeases(leaseMs);
  }

  bind(jobId: string): void {
    this.leases.bind(jobId, this.time.clock.nowMs());
    this.rearm();
  }

  unbind(jobId: string): void {
    this.leases.unbind(jobId);
    this.rearm();
  }

  renew(jobIds: readonly string[], sentAtMs: number): void {
    this.leases.renew(jobIds, sentAtMs);
    this.rearm();
  }

  setLength(leaseMs: number): void {
    this.leases.setLength(leaseMs);
  }

  stop(): void {
    this.stopped = true;
    this.disarm();
  }

  private disarm(): void {
    if (this.timer !== null) this.time.timers.clearTimer(this.timer);
    this.timer = null;
  }

  private rearm(): void {
    this.disarm();
    const next = this.leases.nextExpiry();
    if (next === null || this.stopped) return;
    this.timer = this.time.timers.setTimer(() => this.fire(), Math.max(0, next - this.time.clock.nowMs()) + 1);
  }

  private fire(): void {
    this.timer = null;
    for (const jobId of this.leases.lapse(this.time.clock.nowMs())) this.onLapse(jobId);
    this.rearm();
  }
}
