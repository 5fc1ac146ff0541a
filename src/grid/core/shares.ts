// What the grid does about the states its clusters report for their shares
// of a job (polled while the job runs). Pure.
//   failed          the cluster could not recover its share (no room, no
//                   restorable epoch): the share is lost, as if the cluster
//                   were — its units move to a cluster with room, or the
//                   job fails saying why. Never rounds against it forever.
//   fenced, missing nothing of the job runs there (its lease lapsed, it
//                   restarted): the whole job rolls back to its line in place.
//   all completed   the units have finished: the final round.
//   otherwise       wait (running, recovering: the cluster is on it).
// Invariants:
//   1. A failed share wins over a fenced or missing one (its units must move).
//   2. Every verdict but wait and completed names each cluster and state.

export interface ShareReport {
  clusterId: string;
  /** running | recovering | completed | failed | fenced | missing | unregistered */
  state: string;
  lastError: string;
}

export type ShareVerdict =
  | { kind: 'wait' }
  | { kind: 'completed' }
  | { kind: 'rollback'; reason: string }
  | { kind: 'lose'; clusters: string[]; reason: string };

export function judgeShares(shares: readonly ShareReport[]): ShareVerdict {
  const say = (list: readonly ShareReport[]) =>
    list.map((s) => `cluster ${s.clusterId} has the job ${s.state}${s.lastError ? ` (${s.lastError})` : ''}`).join('; ');
  const failed = shares.filter((s) => s.state === 'failed');
  if (failed.length > 0) return { kind: 'lose', clusters: failed.map((s) => s.clusterId), reason: say(failed) };
  const gone = shares.filter((s) => s.state === 'fenced' || s.state === 'missing');
  if (gone.length > 0) return { kind: 'rollback', reason: say(gone) };
  if (shares.length > 0 && shares.every((s) => s.state === 'completed')) return { kind: 'completed' };
  return { kind: 'wait' };
}
