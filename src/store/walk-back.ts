// Which epochs a restore may try, newest first, and which it must name as
// skipped before it reads a page (ARCHITECTURE §3 invariant 6). Pure.
// The caller names the epochs it believes committed on the job's history (a
// coordinator's record, an agent's last epoch, every committed manifest); a
// later manifest names its parent too. A named epoch whose manifest is gone
// or unreadable is not silently passed over: it is skipped, and says why.
// An epoch directory that nothing names (a round that aborted) is not an
// epoch at all and is not mentioned.
// Invariants:
//   1. Steps are in strictly decreasing epoch order, one per named epoch.
//   2. Only an epoch whose manifest is committed is a candidate; every other
//      named epoch is a skip with a reason that starts "manifest missing" or
//      "manifest invalid".

export type ManifestState =
  | { kind: 'committed'; parentEpoch: bigint | null }
  | { kind: 'missing'; reason: string }
  | { kind: 'invalid'; reason: string };

export interface SkippedEpoch {
  epoch: bigint;
  reason: string;
}

export type WalkStep = { kind: 'candidate'; epoch: bigint } | { kind: 'skip'; skipped: SkippedEpoch };

/**
 * Named epochs and the parents their manifests name, each once. `manifests`
 * holds what each epoch directory of the job has; an epoch without one has none.
 */
export function planWalkBack(named: Iterable<bigint>, manifests: ReadonlyMap<bigint, ManifestState>): WalkStep[] {
  const state = (epoch: bigint): ManifestState => manifests.get(epoch) ?? { kind: 'missing', reason: `epoch ${epoch} has no directory` };
  const seen = new Map<bigint, ManifestState>();
  const pending = [...named];
  const namedBy = new Map<bigint, bigint>();
  while (pending.length > 0) {
    const epoch = pending.pop()!;
    if (seen.has(epoch)) continue;
    const s = state(epoch);
    seen.set(epoch, s);
    if (s.kind === 'committed' && s.parentEpoch !== null && !seen.has(s.parentEpoch)) {
      if (!namedBy.has(s.parentEpoch)) namedBy.set(s.parentEpoch, epoch);
      pending.push(s.parentEpoch);
    }
  }
  return [...seen].sort((a, b) => (a[0] > b[0] ? -1 : a[0] < b[0] ? 1 : 0)).map(([epoch, s]): WalkStep => {
    if (s.kind === 'committed') return { kind: 'candidate', epoch };
    const by = namedBy.has(epoch) ? ` (epoch ${namedBy.get(epoch)} names it as its parent)` : '';
    return { kind: 'skip', skipped: { epoch, reason: `manifest ${s.kind}: ${s.reason}${by}` } };
  });
}
