// A grid rollback restores one recovery line in every cluster of the job;
// when a cluster finds that its epoch of the line (or the lost cluster's,
// which it adopts) does not restore, the whole job walks back to the line
// before — every cluster together, since a cut mixes no lines (ARCHITECTURE
// §3 invariants 2 and 6). Pure.
// Invariants:
//   1. A line is passed over only for data loss (a cluster's DATA_LOSS or
//      NOT_FOUND answer); any other failure ends the recovery.
//   2. The reason names the line and every cluster that refused it.

export interface ClusterRestoreResult {
  clusterId: string;
  /** ok, or how its RestoreGridJob failed: data-loss (the epoch does not restore), or anything else. */
  outcome: 'ok' | 'data-loss' | 'error';
  message: string;
}

export type LineVerdict =
  | { kind: 'restored' }
  | { kind: 'pass-over'; reason: string }
  | { kind: 'fail'; reason: string };

export function judgeLine(gridEpoch: bigint | null, results: readonly ClusterRestoreResult[]): LineVerdict {
  const errors = results.filter((r) => r.outcome === 'error');
  if (errors.length > 0) return { kind: 'fail', reason: errors.map((r) => `cluster ${r.clusterId}: ${r.message}`).join('; ') };
  const lost = results.filter((r) => r.outcome === 'data-loss');
  if (lost.length === 0) return { kind: 'restored' };
  const what = lost.map((r) => `cluster ${r.clusterId}: ${r.message}`).join('; ');
  // Without a line every unit starts anew: nothing to pass over to.
  if (gridEpoch === null) return { kind: 'fail', reason: what };
  return { kind: 'pass-over', reason: `line ${gridEpoch}: ${what}` };
}

/** Lines a rollback tries (each restores every cluster of the job) before it gives up. */
export const MAX_LINES_TRIED = 8;
