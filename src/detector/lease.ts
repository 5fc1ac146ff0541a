// Job leases, the grantor's arithmetic (pure). A member
// (an agent under its cluster, a cluster under the grid) may run a bound
// job's units only while the job's lease holds. The grantor renews it by
// naming the job in a heartbeat answer; the holder counts the lease from
// when it *sent* that heartbeat, which is never later than when the grantor
// answered, so the holder's lease always ends no later than the grantor
// believes it does. A grantor that stops naming a job (it moved the job
// away, or it is gone) can therefore act once its own view has lapsed, plus
// a margin for killing the units. (The holders' side lives in the cores:
// the agent's participant and the cluster supervisor, C6.)

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
