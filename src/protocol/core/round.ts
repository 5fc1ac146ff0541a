// The coordinator's checkpoint round (ARCHITECTURE §4) as a pure core.
//
// Intuition: a two-phase round over opaque participants. PREPARE goes to
// every participant; each freezes, snapshots into staging, thaws and answers
// PREPARED. When all have, COMMIT goes to every participant; each flushes its
// staging and answers DURABLE with a part description the core never looks
// into. When all have, the core asks its shell to persist the epoch manifest;
// the epoch is committed when the shell reports it written. Until the
// manifest is issued, aborting is always safe, so any doubt (a failure report,
// a detector verdict, a deadline, a cancel) aborts: ABORT goes to every
// participant, best effort, the culprit included (those that prepared drop
// staging, those still freezing thaw). COMMIT here is the second phase, not
// the decision: the decision is the manifest, so an ABORT may follow COMMIT
// (a failed flush) but nothing may follow a written manifest.
//
// Read-only votes (the classic 2PC optimization): a participant whose
// snapshot held nothing to write answers PREPARED with its part already
// durable (`readOnly`, what its DURABLE would carry). Its part is recorded at
// once and it gets no COMMIT; COMMIT goes only to the others, and a round in
// which every part is durable by then goes straight to the manifest. Like a
// DURABLE one, such a participant's later failure no longer matters.
//
// The same core runs one level up: the grid coordinator's participants are
// cluster coordinators, its "manifest" is the recovery line in the grid
// catalog. A cluster answering a grid round starts its own round with
// holdAfterPrepare: it replies prepareDone when its agents are all PREPARED
// (the cluster's PREPARED upwards) and sends COMMIT only on `proceed`.
//
//   idle ─start─► preparing ─all PREPARED─► committing ─all DURABLE─► writingManifest ─written─► idle (committed)
//                     │  └─(hold)─► holding ─proceed─┘   │                   │
//                     └── failure / deadline / cancel ───┴─── failed / deadline ┴──► idle (aborted, ABORT to all)
//
// One RoundCoordinator serves one job and runs at most one round at a time,
// with no queue: a start while a round runs is refused (failed-precondition).
// A queued request could not carry its epoch and parent, which depend on how
// the running round ends; coalescing requests is the scheduler's business.
//
// Time is `nowMs` (monotonic, never decreasing). Each phase has one deadline;
// the first input at or after it (a tick or any other) ends the round first.
// An answer counts only if it arrives before the deadline.
//
// Invariants (checkInvariants() verifies them; tests cite them):
//  1. At most one round at a time; epochs strictly increase from round to
//     round (a stale answer can never be taken for a newer round's).
//  2. PREPARE goes to every participant exactly once, in the start step.
//  3. COMMIT goes exactly once to every participant that did not vote
//     read-only, and to no other, only when every one is PREPARED (and, for a
//     held round, after `proceed`).
//  4. writeManifest is emitted at most once per epoch, only when every
//     participant is DURABLE (or voted read-only), and names exactly their
//     parts.
//  5. A round ends exactly once. It is committed only after the shell reported
//     the manifest it emitted written; no ABORT is ever sent for a committed
//     epoch, and nothing at all is sent after a round ends.
//  6. An aborted round sends ABORT to every participant exactly once (in the
//     aborting step) and has persisted a manifest only if that manifest was
//     then reported failed or timed out; it never persists one afterwards.
//  7. A live round always has a deadline; passing it aborts the round naming
//     who did not answer.
//  8. Answers from the network are never asserted on: stale (another epoch,
//     or no round), duplicate, unexpected (not a member, out of phase, bad
//     values) and irrelevant ones change nothing but a counter.
//  9. Bounded: participants ≤ maxParticipants, ids ≤ maxIdChars, reasons cut
//     to maxReasonChars; a round's sets never exceed its participants; the
//     core keeps only the current and the last round.
// 10. A part is the snapshot prepared: a DURABLE (or a read-only vote's part)
//     whose digest differs from the digest its participant PREPARED (both
//     non-empty; '' means the level has none) is never recorded; it aborts
//     the round, naming the participant and both digests. So every durable
//     part, and every part a manifest names, agrees with its PREPARED.

import { assert, invalidArgument } from '../../common/errors.js';
import {
  boundedReason, checkJobId, checkStartShape, describeValue, digestsAgree, failedPrecondition, isWellFormedAnswer,
  isWellFormedDurable, isWellFormedPrepared, MAX_EPOCH, nameList, validateRoundConfig,
} from './round-checks.js';
import { checkRecord, newRecord, type RoundRecord } from './round-record.js';
import type {
  AbortedOutcome, CancelInput, CommittedOutcome, DurableInput, IgnoredCounts, ManifestPart, PreparedInput,
  ProceedInput, RoundConfig, RoundInput, RoundOutcome, RoundPhase, RoundStatus, RoundStep, SendAction, StartInput,
} from './round-types.js';

export { DEFAULT_ROUND_CONFIG, MAX_EPOCH, validateRoundConfig } from './round-checks.js';
export type * from './round-types.js';

/** The epoch after the highest one seen (committed or not): epochs are never reused. */
export function nextEpoch(highestSeen: bigint): bigint {
  if (typeof highestSeen !== 'bigint' || highestSeen < 0n || highestSeen >= MAX_EPOCH) {
    throw invalidArgument(`bad highest epoch ${describeValue(highestSeen)}: expected a bigint from 0 to ${MAX_EPOCH - 1n}`);
  }
  return highestSeen + 1n;
}

export class RoundCoordinator {
  readonly jobId: string;
  private readonly config: RoundConfig;
  private current: RoundRecord | null = null;
  private last: RoundRecord | null = null;
  private highestEpoch = 0n;
  private lastNowMs = 0;
  private roundsStarted = 0;
  private roundsCommitted = 0;
  private roundsAborted = 0;
  private readonly ignored: IgnoredCounts = { stale: 0, duplicate: 0, unexpected: 0, irrelevant: 0 };

  /** `highestEpoch`: the highest epoch this job ever used (from the catalog), so a restart never reuses one. */
  /** `mutants`: deliberately broken variants, for the simulator's mutant runs only. */
  constructor(jobId: string, config: RoundConfig, highestEpoch = 0n, private readonly mutants: ReadonlySet<string> = new Set()) {
    this.jobId = checkJobId(jobId);
    this.config = validateRoundConfig(config);
    nextEpoch(highestEpoch); // validates it
    this.highestEpoch = highestEpoch;
  }

  /**
   * Feeds one input. Throws a GridError, changing nothing, for a bad nowMs or
   * a start that is malformed, not above the highest epoch, or arrives while
   * a round runs. Never throws for an answer from the network (invariant 8).
   */
  step(input: RoundInput, nowMs: number): RoundStep {
    this.checkNow(nowMs);
    if (input.kind === 'start') this.checkStart(input, nowMs);
    this.lastNowMs = nowMs;
    const out: RoundStep = { persist: [], send: [], reply: null };
    this.expireIfDue(nowMs, out);
    switch (input.kind) {
      case 'start': this.onStart(input, nowMs, out); break;
      case 'prepared': this.onPrepared(input, nowMs, out); break;
      case 'durable': this.onDurable(input, nowMs, out); break;
      case 'prepareFailed':
        this.onFailure(input.participant, input.epoch, `failed to prepare: ${this.reason(input.reason)}`, nowMs, out);
        break;
      case 'durableFailed':
        this.onFailure(input.participant, input.epoch, `failed to make its part durable: ${this.reason(input.reason)}`, nowMs, out);
        break;
      case 'participantFailed':
        this.onFailure(input.participant, null, `was declared failed: ${this.reason(input.reason)}`, nowMs, out);
        break;
      case 'manifestWritten': this.onManifestReport(input.epoch, null, nowMs, out); break;
      case 'manifestFailed': this.onManifestReport(input.epoch, this.reason(input.reason), nowMs, out); break;
      case 'proceed': this.onProceed(input, nowMs, out); break;
      case 'cancel': this.onCancel(input, nowMs, out); break;
      case 'tick': break;
      default: {
        const never: never = input;
        throw invalidArgument(`unknown round input ${describeValue((never as { kind: unknown }).kind)}`);
      }
    }
    return out;
  }

  /** When the shell must tick at the latest; null while no round runs. */
  nextDeadlineMs(): number | null {
    return this.current?.deadlineMs ?? null;
  }

  status(): RoundStatus {
    const r = this.current;
    return {
      jobId: this.jobId,
      phase: r === null ? 'idle' : (r.phase as RoundPhase),
      roundId: r?.roundId ?? null,
      epoch: r?.epoch ?? null,
      highestEpoch: this.highestEpoch,
      waitingFor: r === null ? [] : this.waitingFor(r),
      deadlineMs: r?.deadlineMs ?? null,
      roundsStarted: this.roundsStarted,
      roundsCommitted: this.roundsCommitted,
      roundsAborted: this.roundsAborted,
      ignored: { ...this.ignored },
      lastOutcome: this.last?.outcome ?? null,
    };
  }

  /** Throws (a bug) if an invariant of the header is broken. */
  checkInvariants(): void {
    const { current: cur, last } = this;
    const live = cur === null ? 0 : 1;
    assert(this.roundsStarted === this.roundsCommitted + this.roundsAborted + live, 'every started round is live or ended once'); // 1, 5
    if (cur !== null) {
      assert(cur.phase !== 'committed' && cur.phase !== 'aborted', 'the current round is live');
      assert(cur.epoch === this.highestEpoch, 'the current round has the highest epoch'); // 1
      checkRecord(cur, this.config.maxParticipants);
    }
    if (last !== null) {
      assert(last.phase === 'committed' || last.phase === 'aborted', 'the last round has ended');
      assert(cur === null ? last.epoch <= this.highestEpoch : last.epoch < cur.epoch, 'epochs increase'); // 1
      checkRecord(last, this.config.maxParticipants);
    }
  }

  // ---- inputs --------------------------------------------------------------

  private checkNow(nowMs: number): void {
    if (typeof nowMs !== 'number' || !Number.isSafeInteger(nowMs) || nowMs < this.lastNowMs) {
      throw invalidArgument(`bad round time ${describeValue(nowMs)}: expected an integer ms not below ${this.lastNowMs}`);
    }
  }

  private checkStart(input: StartInput, nowMs: number): void {
    checkStartShape(input, this.jobId, this.config);
    const r = this.current;
    if (r !== null && r.deadlineMs !== null && nowMs < r.deadlineMs) {
      throw failedPrecondition(`job ${this.jobId} already runs round ${r.roundId} (epoch ${r.epoch}, ${r.phase})`);
    }
    if (input.epoch <= this.highestEpoch) {
      throw failedPrecondition(`epoch ${input.epoch} of job ${this.jobId} is not above ${this.highestEpoch}, the highest used`);
    }
  }

  private onStart(input: StartInput, nowMs: number, out: RoundStep): void {
    assert(this.current === null, 'start only when idle');
    const r = newRecord(input, nowMs, nowMs + this.config.prepareTimeoutMs);
    this.current = r;
    this.highestEpoch = input.epoch;
    this.roundsStarted += 1;
    for (const to of r.participants) {
      this.send(r, out, {
        kind: 'prepare', to, jobId: r.jobId, epoch: r.epoch, parentEpoch: r.parentEpoch, full: r.full,
        deadlineMs: nowMs + this.config.prepareTimeoutMs,
      });
    }
  }

  private onPrepared(input: PreparedInput, nowMs: number, out: RoundStep): void {
    const r = this.roundFor(input.participant, input.epoch);
    if (r === null) return;
    if (!isWellFormedPrepared(input, this.config)) return void (this.ignored.unexpected += 1);
    if (r.prepared.has(input.participant)) return void (this.ignored.duplicate += 1);
    assert(r.phase === 'preparing', 'a participant not yet PREPARED means the round is preparing');
    const { participant, pages, bytes, digest, readOnly } = input;
    if (readOnly !== undefined && !digestsAgree(digest, readOnly.digest)) return this.partNotPrepared(r, participant, digest, readOnly.digest, nowMs, out);
    r.prepared.set(participant, { participant, pages, bytes, digest });
    if (readOnly !== undefined) {
      r.durable.set(participant, { part: readOnly.part, digest: readOnly.digest });
      r.readOnly.add(participant);
    }
    if (r.prepared.size < r.participants.length && !this.mutants.has('commit-before-all-prepared')) return;
    r.preparedAtMs = nowMs;
    if (r.hold) this.becomeHolding(r, nowMs, out);
    else this.becomeCommitting(r, nowMs, out);
  }

  private onProceed(input: ProceedInput, nowMs: number, out: RoundStep): void {
    const r = this.roundForEpoch(input.epoch);
    if (r === null) return;
    if (r.phase !== 'holding') {
      if (r.hold && r.commitSentAtMs !== null) this.ignored.duplicate += 1;
      else this.ignored.unexpected += 1;
      return;
    }
    this.becomeCommitting(r, nowMs, out);
  }

  private onDurable(input: DurableInput, nowMs: number, out: RoundStep): void {
    const r = this.roundFor(input.participant, input.epoch);
    if (r === null) return;
    if (r.durable.has(input.participant)) return void (this.ignored.duplicate += 1);
    if (r.phase !== 'committing') return void (this.ignored.unexpected += 1); // no COMMIT sent yet
    if (!isWellFormedDurable(input, this.config)) return void (this.ignored.unexpected += 1);
    const { participant, part, digest } = input;
    const prepared = r.prepared.get(participant)!.digest;
    if (!digestsAgree(prepared, digest)) return this.partNotPrepared(r, participant, prepared, digest, nowMs, out);
    r.durable.set(participant, { part, digest });
    if (r.durable.size === r.participants.length) this.becomeWritingManifest(r, nowMs, out);
  }

  /** Invariant 10: a part that is not the snapshot its participant prepared aborts the round. */
  private partNotPrepared(r: RoundRecord, participant: string, prepared: string, written: string, nowMs: number, out: RoundStep): void {
    const why = `wrote a part with digest ${written}, not the digest ${prepared} it prepared: the part is not the snapshot prepared`;
    this.becomeAborted(r, `participant ${JSON.stringify(participant)} ${why}`, [participant], nowMs, out);
  }

  /** prepareFailed, durableFailed (epoch given) or a detector verdict (epoch null). */
  private onFailure(participant: string, epoch: bigint | null, what: string, nowMs: number, out: RoundStep): void {
    let r: RoundRecord | null;
    if (epoch !== null) {
      r = this.roundFor(participant, epoch);
    } else {
      r = this.current;
      if (r === null || !r.members.has(participant)) {
        this.ignored.irrelevant += 1; // a verdict about a node outside the round
        r = null;
      }
    }
    if (r === null) return;
    // Once a part is durable, or the manifest is issued, a failure of its
    // participant no longer matters to this round.
    if (r.durable.has(participant) || r.phase === 'writingManifest') return void (this.ignored.irrelevant += 1);
    this.becomeAborted(r, `participant ${JSON.stringify(participant)} ${what}`, [participant], nowMs, out);
  }

  private onManifestReport(epoch: bigint, failure: string | null, nowMs: number, out: RoundStep): void {
    const r = this.roundForEpoch(epoch);
    if (r === null) return;
    if (r.phase !== 'writingManifest') return void (this.ignored.unexpected += 1);
    if (failure === null) {
      this.becomeCommitted(r, nowMs, out);
    } else {
      r.manifestResult = 'failed';
      this.becomeAborted(r, `manifest write failed: ${failure}`, [], nowMs, out);
    }
  }

  private onCancel(input: CancelInput, nowMs: number, out: RoundStep): void {
    const r = this.roundForEpoch(input.epoch);
    if (r === null) return;
    // The manifest is issued: its report decides, as for a crash at that instant.
    if (r.phase === 'writingManifest') return void (this.ignored.irrelevant += 1);
    this.becomeAborted(r, `cancelled: ${this.reason(input.reason)}`, [], nowMs, out);
  }

  /** Deadline first: an input at or after the deadline finds the round over. */
  private expireIfDue(nowMs: number, out: RoundStep): void {
    const r = this.current;
    if (r === null || r.deadlineMs === null || nowMs < r.deadlineMs) return;
    const c = this.config;
    switch (r.phase) {
      case 'preparing': {
        const missing = this.waitingFor(r);
        this.becomeAborted(r, `no PREPARED from ${nameList(missing)} within ${c.prepareTimeoutMs} ms`, missing, nowMs, out);
        break;
      }
      case 'holding':
        this.becomeAborted(r, `no decision to proceed within ${c.holdTimeoutMs} ms`, [], nowMs, out);
        break;
      case 'committing': {
        const missing = this.waitingFor(r);
        this.becomeAborted(r, `no DURABLE from ${nameList(missing)} within ${c.commitTimeoutMs} ms`, missing, nowMs, out);
        break;
      }
      case 'writingManifest':
        r.manifestResult = 'timedOut';
        this.becomeAborted(r, `manifest write did not report within ${c.manifestTimeoutMs} ms (it may still land; ` +
          'this epoch is not recorded as committed)', [], nowMs, out);
        break;
      case 'committed':
      case 'aborted':
        assert(false, 'an ended round is never current');
    }
  }

  // ---- transitions ---------------------------------------------------------

  private becomeHolding(r: RoundRecord, nowMs: number, out: RoundStep): void {
    r.phase = 'holding';
    r.deadlineMs = nowMs + this.config.holdTimeoutMs;
    const prepared = r.participants.map((p) => r.prepared.get(p)!);
    out.reply = {
      kind: 'prepareDone', roundId: r.roundId, jobId: r.jobId, epoch: r.epoch,
      pages: prepared.reduce((s, x) => s + x.pages, 0), bytes: prepared.reduce((s, x) => s + x.bytes, 0),
      prepared, prepareMs: nowMs - r.startedAtMs,
    };
  }

  /** COMMIT to those that still have a part to write; none left (all voted read-only): the manifest at once. */
  private becomeCommitting(r: RoundRecord, nowMs: number, out: RoundStep): void {
    r.phase = 'committing';
    r.commitSentAtMs = nowMs;
    const writers = r.participants.filter((p) => !r.durable.has(p));
    if (writers.length === 0) return this.becomeWritingManifest(r, nowMs, out);
    r.deadlineMs = nowMs + this.config.commitTimeoutMs;
    for (const to of writers) {
      this.send(r, out, { kind: 'commit', to, jobId: r.jobId, epoch: r.epoch, deadlineMs: r.deadlineMs });
    }
  }

  private becomeWritingManifest(r: RoundRecord, nowMs: number, out: RoundStep): void {
    assert(r.manifestsEmitted === 0 && r.durable.size === r.participants.length, 'one manifest, after every DURABLE');
    r.phase = 'writingManifest';
    r.manifestAtMs = nowMs;
    r.deadlineMs = nowMs + this.config.manifestTimeoutMs;
    r.manifestsEmitted += 1;
    const parts: ManifestPart[] = r.participants.map((participant) => {
      const info = r.prepared.get(participant)!;
      return { participant, pages: info.pages, bytes: info.bytes, digest: info.digest, part: r.durable.get(participant)!.part };
    });
    out.persist.push({
      kind: 'writeManifest', jobId: r.jobId, epoch: r.epoch, parentEpoch: r.parentEpoch, full: r.full, parts,
      deadlineMs: r.deadlineMs,
    });
  }

  private becomeCommitted(r: RoundRecord, nowMs: number, out: RoundStep): void {
    const preparedAt = r.preparedAtMs!;
    const commitAt = r.commitSentAtMs!;
    const manifestAt = r.manifestAtMs!;
    let pages = 0;
    let bytes = 0;
    for (const info of r.prepared.values()) {
      pages += info.pages;
      bytes += info.bytes;
    }
    const outcome: CommittedOutcome = {
      kind: 'committed', roundId: r.roundId, jobId: r.jobId, epoch: r.epoch, parentEpoch: r.parentEpoch,
      full: r.full, participants: r.participants.length, pages, bytes,
      timings: {
        prepareMs: preparedAt - r.startedAtMs, holdMs: commitAt - preparedAt, commitMs: manifestAt - commitAt,
        manifestMs: nowMs - manifestAt, totalMs: nowMs - r.startedAtMs,
      },
    };
    r.manifestResult = 'written';
    this.roundsCommitted += 1;
    this.end(r, 'committed', outcome, nowMs, out);
  }

  /** ABORT to every participant, the culprit included, then the outcome. */
  private becomeAborted(r: RoundRecord, reason: string, culprits: string[], nowMs: number, out: RoundStep): void {
    const phase = r.phase;
    assert(phase !== 'committed' && phase !== 'aborted', 'abort a live round only');
    for (const to of r.participants) {
      this.send(r, out, { kind: 'abort', to, jobId: r.jobId, epoch: r.epoch, deadlineMs: nowMs + this.config.abortTimeoutMs, reason });
    }
    const outcome: AbortedOutcome = {
      kind: 'aborted', roundId: r.roundId, jobId: r.jobId, epoch: r.epoch, phase, reason, culprits,
      elapsedMs: nowMs - r.startedAtMs,
    };
    this.roundsAborted += 1;
    this.end(r, 'aborted', outcome, nowMs, out);
  }

  private end(r: RoundRecord, phase: 'committed' | 'aborted', outcome: RoundOutcome, nowMs: number, out: RoundStep): void {
    assert(out.reply === null && r.outcome === null, 'a round ends once, with one reply');
    r.phase = phase;
    r.deadlineMs = null;
    r.endedAtMs = nowMs;
    r.outcome = outcome;
    out.reply = outcome;
    this.last = r;
    this.current = null;
  }

  // ---- helpers -------------------------------------------------------------

  /** Records every send in the round's ledger; nothing is sent after ABORT or the end. */
  private send(r: RoundRecord, out: RoundStep, action: SendAction): void {
    assert(r.outcome === null && !r.sentAbort.has(action.to), `nothing is sent for epoch ${r.epoch} after it ends`);
    const ledger = action.kind === 'prepare' ? r.sentPrepare : action.kind === 'commit' ? r.sentCommit : r.sentAbort;
    assert(!ledger.has(action.to), `one ${action.kind} per participant`);
    ledger.add(action.to);
    out.send.push(action);
  }

  /** The current round if the answer is well formed, for its epoch, from a member; else counts it. */
  private roundFor(participant: string, epoch: bigint): RoundRecord | null {
    if (!isWellFormedAnswer(participant, epoch, this.config)) return this.ignore('unexpected');
    const r = this.roundForEpoch(epoch);
    if (r !== null && !r.members.has(participant)) return this.ignore('unexpected');
    return r;
  }

  private roundForEpoch(epoch: bigint): RoundRecord | null {
    if (typeof epoch !== 'bigint') return this.ignore('unexpected');
    const r = this.current;
    if (r === null || r.epoch !== epoch) return this.ignore('stale');
    return r;
  }

  private ignore(why: keyof IgnoredCounts): null {
    this.ignored[why] += 1;
    return null;
  }

  private waitingFor(r: RoundRecord): string[] {
    switch (r.phase) {
      case 'preparing': return r.participants.filter((p) => !r.prepared.has(p));
      case 'committing': return r.participants.filter((p) => !r.durable.has(p));
      default: return [];
    }
  }

  private reason(reason: unknown): string {
    return boundedReason(reason, this.config.maxReasonChars);
  }
}
