import { performance } from 'node:perf_hooks';
import { JobLeases } from './lease.js';

// The shell around a holder's JobLeases: a timer set to the next expiry,
// and the callback that fences a job whose lease ran out.

export class LeaseKeeper {
  readonly leases: JobLeases;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(leaseMs: number, private readonly onLapse: (jobId: string) => void, private readonly now: () => number = () => performance.now()) {
    this.leases = new JobLeases(leaseMs);
  }

  bind(jobId: string): void {
    this.leases.bind(jobId, this.now());
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
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private rearm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const next = this.leases.nextExpiry();
    if (next === null || this.stopped) return;
    this.timer = setTimeout(() => this.fire(), Math.max(0, next - this.now()) + 1);
  }

  private fire(): void {
    this.timer = null;
    for (const jobId of this.leases.lapse(this.now())) this.onLapse(jobId);
    this.rearm();
  }
}
