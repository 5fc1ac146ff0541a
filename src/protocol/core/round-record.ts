// One round's state and the ledger of what the core emitted for it, with the
// per-round invariant checks (the numbers are those of round.ts's header).
// The ledger exists so that checkInvariants() can verify what was *sent*, not
// only what the state says.

import { assert } from '../../common/errors.js';
import { digestsAgree } from './round-checks.js';
import type { DurableInfo, PreparedInfo, RoundOutcome, RoundPhase, StartInput } from './round-types.js';

export type RecordPhase = RoundPhase | 'committed' | 'aborted';

export interface RoundRecord {
  readonly roundId: string;
  readonly jobId: string;
  readonly epoch: bigint;
  readonly parentEpoch: bigint | null;
  readonly full: boolean;
  readonly hold: boolean;
  readonly participants: readonly string[];
  readonly members: ReadonlySet<string>;
  phase: RecordPhase;
  /** The current phase's deadline; null once the round has ended. */
  deadlineMs: number | null;
  readonly startedAtMs: number;
  preparedAtMs: number | null;
  commitSentAtMs: number | null;
  manifestAtMs: number | null;
  endedAtMs: number | null;
  readonly prepared: Map<string, PreparedInfo>;
  readonly durable: Map<string, DurableInfo>;
  /** Voted read-only: durable from their PREPARED on, sent no COMMIT (invariant 3). */
  readonly readOnly: Set<string>;
  // ---- ledger ----
  readonly sentPrepare: Set<string>;
  readonly sentCommit: Set<string>;
  readonly sentAbort: Set<string>;
  manifestsEmitted: number;
  manifestResult: 'written' | 'failed' | 'timedOut' | null;
  outcome: RoundOutcome | null;
}

export function newRecord(input: StartInput, nowMs: number, deadlineMs: number): RoundRecord {
  return {
    roundId: input.roundId,
    jobId: input.jobId,
    epoch: input.epoch,
    parentEpoch: input.parentEpoch,
    full: input.full,
    hold: input.holdAfterPrepare === true,
    participants: [...input.participants],
    members: new Set(input.participants),
    phase: 'preparing',
    deadlineMs,
    startedAtMs: nowMs,
    preparedAtMs: null,
    commitSentAtMs: null,
    manifestAtMs: null,
    endedAtMs: null,
    prepared: new Map(),
    durable: new Map(),
    readOnly: new Set(),
    sentPrepare: new Set(),
    sentCommit: new Set(),
    sentAbort: new Set(),
    manifestsEmitted: 0,
    manifestResult: null,
    outcome: null,
  };
}

function subset(a: Iterable<string>, b: ReadonlySet<string> | Map<string, unknown>): boolean {
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

/** Throws (a bug) if the record breaks one of invariants 2-7, 9 or 10. */
export function checkRecord(r: RoundRecord, maxParticipants: number): void {
  const n = r.participants.length;
  const at = `round ${r.roundId} epoch ${r.epoch} (${r.phase})`;
  assert(n >= 1 && n <= maxParticipants && r.members.size === n, `${at}: participant count`); // 9
  assert(r.sentPrepare.size === n, `${at}: PREPARE went to every participant`); // 2
  assert(subset(r.prepared.keys(), r.members), `${at}: prepared ⊆ participants`);
  assert(subset(r.durable.keys(), r.prepared), `${at}: durable ⊆ prepared`);
  assert(subset(r.readOnly, r.durable), `${at}: read-only ⊆ durable`);
  for (const [p, d] of r.durable) assert(digestsAgree(r.prepared.get(p)!.digest, d.digest), `${at}: ${p}'s durable part is the snapshot it prepared`); // 10
  // 3: COMMIT exactly to those that did not vote read-only, once every participant is PREPARED.
  const commitStarted = r.commitSentAtMs !== null;
  assert(commitStarted || r.sentCommit.size === 0, `${at}: no COMMIT before the commit phase`); // 3
  assert(!commitStarted || r.prepared.size === n, `${at}: COMMIT only after all PREPARED`); // 3
  assert(!commitStarted || r.sentCommit.size + r.readOnly.size === n, `${at}: COMMIT to every participant that did not vote read-only`); // 3
  for (const p of r.sentCommit) assert(!r.readOnly.has(p), `${at}: no COMMIT to ${p}, which voted read-only`); // 3
  assert(r.manifestsEmitted <= 1, `${at}: one manifest per epoch`); // 4
  assert(r.manifestsEmitted === 0 || r.durable.size === n, `${at}: manifest only after every DURABLE`); // 4
  assert(r.sentAbort.size === 0 || r.sentAbort.size === n, `${at}: ABORT to all or none`); // 6
  const live = r.phase !== 'committed' && r.phase !== 'aborted';
  assert(live === (r.deadlineMs !== null) && live === (r.outcome === null) && live === (r.endedAtMs === null), `${at}: a live round has a deadline and no outcome`); // 5, 7
  switch (r.phase) {
    case 'preparing':
      assert(r.prepared.size < n && !commitStarted && r.durable.size === r.readOnly.size && r.sentAbort.size === 0, `${at}: preparing`);
      break;
    case 'holding':
      assert(r.hold && r.prepared.size === n && !commitStarted && r.durable.size === r.readOnly.size && r.sentAbort.size === 0, `${at}: holding`);
      break;
    case 'committing':
      assert(r.sentCommit.size > 0 && r.durable.size < n && r.manifestsEmitted === 0 && r.sentAbort.size === 0, `${at}: committing`);
      break;
    case 'writingManifest':
      assert(r.durable.size === n && r.manifestsEmitted === 1 && r.manifestResult === null && r.sentAbort.size === 0, `${at}: writing manifest`);
      break;
    case 'committed':
      assert(r.outcome?.kind === 'committed' && r.manifestsEmitted === 1 && r.manifestResult === 'written', `${at}: committed after its manifest was written`); // 5
      assert(r.sentAbort.size === 0, `${at}: no ABORT for a committed epoch`); // 5
      break;
    case 'aborted':
      assert(r.outcome?.kind === 'aborted' && r.sentAbort.size === n, `${at}: aborted sends ABORT to every participant`); // 6
      assert(r.manifestsEmitted === 0 || r.manifestResult === 'failed' || r.manifestResult === 'timedOut', `${at}: aborted with a manifest only if it failed`); // 6
      break;
    default: {
      const never: never = r.phase;
      throw new Error(`unknown phase ${String(never)}`);
    }
  }
}
