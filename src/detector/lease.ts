import { GridError } from '../common/errors.js';

// Job leases, the holder's side (pure: time in, verdicts out). A member
// (an agent under its cluster, a cluster under the grid) may run a bound
// job's units only while the job's lease holds. The grantor renews it by
// naming the job in a heartbeat answer; the holder counts the lease from
// when it *sent* that heartbeat, which is never later than when the grantor
// answered, so the holder's lease always ends no later than the grantor
// believes it does. A grantor that stops naming a job (it moved the job
// away, or it is gone) can therefore act once its own view has lapsed, plus
// a margin for killing the units.

export class JobLeases {
  private readonly until = new Map<string, number>();

  constructor(private leaseMs: number) {
    checkLeaseMs(leaseMs);
  }

  get lengthMs(): number {
    return this.leaseMs;
  }

  /** The grantor says how long its leases last (at registration). */
  setLength(leaseMs: number): void {
    checkLeaseMs(leaseMs);
    this.leaseMs = leaseMs;
  }

  /** A bound job starts with a whole lease: the grantor just started it. */
  bind(jobId: string, nowMs: number): void {
    this.until.set(jobId, nowMs + this.leaseMs);
  }

  unbind(jobId: string): void {
    this.until.delete(jobId);
  }

  isBound(jobId: string): boolean {
    return this.until.has(jobId);
  }

  /** A heartbeat sent at sentAtMs was answered naming these jobs. */
  renew(jobIds: Iterable<string>, sentAtMs: number): void {
    for (const id of jobIds) {
      const u = this.until.get(id);
      if (u !== undefined) this.until.set(id, Math.max(u, sentAtMs + this.leaseMs));
    }
  }

  /** The bound jobs whose lease has run out at nowMs; they are unbound. */
  lapse(nowMs: number): string[] {
    const out: string[] = [];
    for (const [id, u] of this.until) {
      if (u <= nowMs) out.push(id);
    }
    for (const id of out) this.until.delete(id);
    return out.sort();
  }

  /** When the next lease runs out, if any is bound. */
  nextExpiry(): number | null {
    let next: number | null = null;
    for (const u of this.until.values()) if (next === null || u < next) next = u;
    return next;
  }

  remainingMs(jobId: string, nowMs: number): number | null {
    const u = this.until.get(jobId);
    return u === undefined ? null : Math.max(0, u - nowMs);
  }
}

function checkLeaseMs(ms: number): void {
  if (!Number.isFinite(ms) || ms <= 0) throw new GridError('invalid-argument', `lease length ${ms} ms must be a positive number`);
}

/**
 * The grantor's side: the instant after which no holder can still hold a
 * lease it granted at grantedAtMs (its last answer naming the job, or the
 * return of the call that started the job), with the holder's own leases
 * to its members (nested) and a margin for killing units.
 */
export function leaseSafeAfter(grantedAtMs: number, leaseMs: number, nestedLeaseMs: number, marginMs: number): number {
  return grantedAtMs + leaseMs + nestedLeaseMs + marginMs;
}

/** The margin a grantor adds: timer lateness and the kill itself. */
export function leaseMarginMs(leaseMs: number): number {
  return Math.max(200, Math.round(leaseMs * 0.2));
}
