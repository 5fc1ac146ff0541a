// The grid's fencing token, and what a cluster accepts given the newest one
// it has seen. A grid call (and a heartbeat answer) carries the pair
// (term, incarnation): `term` is the leader's election revision when grid
// coordinators elect a leader through etcd (docs/grid-ha.md), 0 for a grid
// without etcd; `incarnation` is the sending process's, bumped at each of
// its starts. Pairs are ordered term first: a leader elected later always
// wins, whatever its process's incarnation; within a term (one leader
// process) and without etcd (term 0) the incarnation orders restarts as it
// always did.
//
// Invariant (F1, the simulator's checker 'stale leader'): a cluster acts on
// no grid call whose fence is below the highest it has seen — from a call it
// accepted or from a heartbeat answer. What it refuses it refuses with a
// reason that names both fences (the shells answer FAILED_PRECONDITION).

export interface GridFence {
  /** The leader's election revision (0: a grid without etcd). */
  term: bigint;
  /** The sending grid process's incarnation. */
  incarnation: bigint;
}

export const NO_GRID_FENCE: GridFence = { term: 0n, incarnation: 0n };

/** -1, 0 or 1 as a is older than, the same as or newer than b. */
export function compareGridFence(a: GridFence, b: GridFence): -1 | 0 | 1 {
  if (a.term !== b.term) return a.term < b.term ? -1 : 1;
  if (a.incarnation !== b.incarnation) return a.incarnation < b.incarnation ? -1 : 1;
  return 0;
}

export function describeGridFence(f: GridFence): string {
  return f.term === 0n ? `incarnation ${f.incarnation}` : `leader term ${f.term} (incarnation ${f.incarnation})`;
}

/**
 * A cluster's verdict on a grid call fenced `call`, having seen `seen`: null
 * to accept it (the caller then records max(seen, call)), or why it is refused.
 */
export function staleGridRefusal(seen: GridFence, call: GridFence): string | null {
  if (compareGridFence(call, seen) >= 0) return null;
  return `fenced: a call from a deposed grid: its ${describeGridFence(call)} is older than the ${describeGridFence(seen)} this cluster has seen`;
}

/** The newer of two fences. */
export function newerGridFence(a: GridFence, b: GridFence): GridFence {
  return compareGridFence(a, b) >= 0 ? a : b;
}
