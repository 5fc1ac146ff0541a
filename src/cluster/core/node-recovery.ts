import type { ForeignEpochLayout } from './adoption.js';

// The decisions of a cluster's node recovery that do not need I/O. Pure.
// A recovery moves the units of lost nodes to spares, then restores every
// node of the job from one epoch. Two things can go wrong on the way, and
// neither may fail a job that could still run:
//   - a target dies (or was already dying: suspected, not yet failed): it is
//     lost too, its units move, and the recovery plans again, as long as some
//     node has room (placement says when none has);
//   - the epoch does not restore: the recovery walks back to an older one,
//     the same for every node (a cut mixes no epochs). Parts are then loaded
//     by the nodes that now run the units whose containers they hold.
// Invariants:
//   1. A target is lost only for a failure that says it is unreachable, or
//      when the detector no longer calls it alive; anything else fails.
//   2. Every attempt either loses a node or passes over an epoch, and there
//      are at most MAX_RECOVERY_ATTEMPTS of them.
//   3. holdersAtEpoch maps every writer of the epoch's chain to exactly one
//      node, and refuses when a node's units of that epoch now run apart.

export const MAX_RECOVERY_ATTEMPTS = 6;
/** Candidates a walk-back verifies (each reads its whole chain) before it gives up. */
export const MAX_WALK_BACK_CANDIDATES = 8;

/** How a node's restore call failed, as the shell saw it. */
export interface RestoreFailure {
  nodeId: string;
  /** unreachable: no answer (refused, deadline, not registered); data-loss: the epoch did not verify there. */
  kind: 'unreachable' | 'data-loss' | 'other';
  /** What the detector says of the node now. */
  verdict: 'alive' | 'suspected' | 'failed' | 'unregistered';
  epoch: bigint | null;
  message: string;
}

export type RestoreFailureStep =
  | { kind: 'lose-node'; nodeId: string; reason: string }
  | { kind: 'skip-epoch'; epoch: bigint; reason: string }
  | { kind: 'fail'; reason: string };

export function afterRestoreFailure(f: RestoreFailure, attempt: number): RestoreFailureStep {
  if (attempt >= MAX_RECOVERY_ATTEMPTS) {
    return { kind: 'fail', reason: `gave up after ${attempt} attempts; the last: node ${f.nodeId}: ${f.message}` };
  }
  if (f.kind === 'unreachable' || f.verdict !== 'alive') {
    return { kind: 'lose-node', nodeId: f.nodeId, reason: `restore target ${f.nodeId} is ${f.verdict === 'alive' ? 'unreachable' : f.verdict}: ${f.message}` };
  }
  if (f.kind === 'data-loss' && f.epoch !== null) return { kind: 'skip-epoch', epoch: f.epoch, reason: `node ${f.nodeId} could not load it: ${f.message}` };
  return { kind: 'fail', reason: `node ${f.nodeId}: ${f.message}` };
}

/**
 * Writer of parts → the node that loads them, to restore an older epoch of
 * this store: each writer's parts belonged then to the units of its holder
 * (the epoch's own partOwners, or itself), and go where those units run now.
 */
export function holdersAtEpoch(
  layout: ForeignEpochLayout,
  writers: readonly string[],
  placement: ReadonlyMap<string, string>,
): { ok: true; holders: Map<string, string> } | { ok: false; reason: string } {
  for (const u of placement.keys()) {
    if (layout.placement[u] === undefined) return { ok: false, reason: `unit ${u} is not in that epoch` };
  }
  const nowOf = new Map<string, string>();
  for (const [u, then] of Object.entries(layout.placement)) {
    const now = placement.get(u);
    if (now === undefined) return { ok: false, reason: `unit ${u} of that epoch is not in the job now` };
    const other = nowOf.get(then);
    if (other !== undefined && other !== now) return { ok: false, reason: `the units of ${then} in that epoch now run on ${other} and ${now}` };
    nowOf.set(then, now);
  }
  const holders = new Map<string, string>();
  for (const w of writers) {
    const then = layout.partOwners[w] ?? w;
    const now = nowOf.get(then);
    if (now === undefined) return { ok: false, reason: `the parts of ${w} belong to ${then}, which ran no unit in that epoch` };
    holders.set(w, now);
  }
  return { ok: true, holders };
}
