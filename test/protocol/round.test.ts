import { describe, expect, it } from 'vitest';
import { GridError } from '../../src/common/errors.js';
import {
  nextEpoch, RoundCoordinator, type RoundConfig, type RoundInput, type RoundStep, type StartInput,
} from '../../src/protocol/core/round.js';

// Exact-output tests of the round core (Temporal style): feed inputs, compare
// the exact persist / send / reply lists. Invariant numbers are those of
// src/protocol/core/round.ts; checkInvariants() runs after every step.

const CONFIG: RoundConfig = {
  prepareTimeoutMs: 1000,
  holdTimeoutMs: 3000,
  commitTimeoutMs: 2000,
  manifestTimeoutMs: 500,
  abortTimeoutMs: 100,
  maxParticipants: 8,
  maxReasonChars: 40,
  maxIdChars: 16,
};
const JOB = 'bank';
const P3 = ['n1', 'n2', 'n3'];
const NONE: RoundStep = { persist: [], send: [], reply: null };

function start(epoch: bigint, over: Partial<StartInput> = {}): StartInput {
  return { kind: 'start', roundId: `r${epoch}`, jobId: JOB, epoch, parentEpoch: epoch - 1n || null, participants: P3, full: epoch === 1n, ...over };
}

function make(): { c: RoundCoordinator; step: (input: RoundInput, nowMs: number) => RoundStep } {
  const c = new RoundCoordinator(JOB, CONFIG);
  return {
    c,
    step: (input, nowMs) => {
      const out = c.step(input, nowMs);
      c.checkInvariants();
      return out;
    },
  };
}

const prepared = (participant: string, epoch: bigint, pages = 10): RoundInput =>
  ({ kind: 'prepared', participant, epoch, pages, bytes: pages * 4096, digest: `d-${participant}` });
const durable = (participant: string, epoch: bigint, digest = `d-${participant}`): RoundInput =>
  ({ kind: 'durable', participant, epoch, part: { file: `${participant}.pages` }, digest });

/** A read-only vote: PREPARED with its part durable already (what its DURABLE would carry). */
const readOnly = (participant: string, epoch: bigint, digest = `d-${participant}`): RoundInput =>
  ({ kind: 'prepared', participant, epoch, pages: 0, bytes: 0, digest: `d-${participant}`, readOnly: { part: { file: `${participant}.empty` }, digest } });
const prepares = (epoch: bigint, deadlineMs: number, parentEpoch: bigint | null = epoch - 1n || null, full = epoch === 1n) =>
  P3.map((to) => ({ kind: 'prepare', to, jobId: JOB, epoch, parentEpoch, full, deadlineMs }));
const commits = (epoch: bigint, deadlineMs: number) => P3.map((to) => ({ kind: 'commit', to, jobId: JOB, epoch, deadlineMs }));
const aborts = (epoch: bigint, deadlineMs: number, reason: string) =>
  P3.map((to) => ({ kind: 'abort', to, jobId: JOB, epoch, deadlineMs, reason }));

/** Runs epoch `epoch` from start (at t0) to every DURABLE; returns the step of the last DURABLE. */
function toManifest(step: (i: RoundInput, t: number) => RoundStep, epoch: bigint, t0: number): RoundStep {
  step(start(epoch), t0);
  for (const p of P3) step(prepared(p, epoch), t0 + 100);
  step(durable('n1', epoch), t0 + 200);
  step(durable('n2', epoch), t0 + 200);
  return step(durable('n3', epoch), t0 + 200);
}

describe('RoundCoordinator, exact outputs', () => {
  it('happy path with 3 participants: PREPARE all, COMMIT all, manifest, committed with timings (invariants 2-5)', () => {
    const { c, step } = make();
    expect(step(start(1n), 1000)).toEqual({ persist: [], send: prepares(1n, 2000), reply: null });
    expect(c.status()).toMatchObject({ phase: 'preparing', epoch: 1n, waitingFor: P3, deadlineMs: 2000 });
    expect(step(prepared('n2', 1n), 1100)).toEqual(NONE);
    expect(step(prepared('n1', 1n), 1200)).toEqual(NONE);
    expect(c.status().waitingFor).toEqual(['n3']);
    expect(step(prepared('n3', 1n, 0), 1300)).toEqual({ persist: [], send: commits(1n, 3300), reply: null });
    expect(c.nextDeadlineMs()).toBe(3300);
    expect(step(durable('n3', 1n), 1400)).toEqual(NONE);
    expect(step(durable('n1', 1n), 1450)).toEqual(NONE);
    expect(c.status()).toMatchObject({ phase: 'committing', waitingFor: ['n2'] });
    expect(step(durable('n2', 1n), 1500)).toEqual({
      persist: [{
        kind: 'writeManifest', jobId: JOB, epoch: 1n, parentEpoch: null, full: true, deadlineMs: 2000,
        parts: [
          { participant: 'n1', pages: 10, bytes: 40960, digest: 'd-n1', part: { file: 'n1.pages' } },
          { participant: 'n2', pages: 10, bytes: 40960, digest: 'd-n2', part: { file: 'n2.pages' } },
          { participant: 'n3', pages: 0, bytes: 0, digest: 'd-n3', part: { file: 'n3.pages' } },
        ],
      }],
      send: [],
      reply: null,
    });
    expect(c.status()).toMatchObject({ phase: 'writingManifest', waitingFor: [], deadlineMs: 2000 });
    expect(step({ kind: 'manifestWritten', epoch: 1n }, 1600)).toEqual({
      persist: [],
      send: [],
      reply: {
        kind: 'committed', roundId: 'r1', jobId: JOB, epoch: 1n, parentEpoch: null, full: true, participants: 3,
        pages: 20, bytes: 81920,
        timings: { prepareMs: 300, holdMs: 0, commitMs: 200, manifestMs: 100, totalMs: 600 },
      },
    });
    expect(c.nextDeadlineMs()).toBeNull();
    expect(c.status()).toMatchObject({ phase: 'idle', epoch: null, roundsStarted: 1, roundsCommitted: 1, roundsAborted: 0 });
    // After the manifest, late messages change nothing (invariant 5).
    expect(step({ kind: 'participantFailed', participant: 'n1', reason: 'gone' }, 1700)).toEqual(NONE);
    expect(step(durable('n1', 1n), 1700)).toEqual(NONE);
    expect(c.status().lastOutcome?.kind).toBe('committed');
  });

  it('read-only votes only: no COMMIT at all, the manifest names their parts at once, and the round commits (invariants 3, 4)', () => {
    const { c, step } = make();
    step(start(2n), 0);
    expect(step(readOnly('n1', 2n), 10)).toEqual(NONE);
    expect(step(readOnly('n3', 2n), 20)).toEqual(NONE);
    expect(c.status()).toMatchObject({ phase: 'preparing', waitingFor: ['n2'] });
    expect(step(readOnly('n2', 2n), 30)).toEqual({
      persist: [{
        kind: 'writeManifest', jobId: JOB, epoch: 2n, parentEpoch: 1n, full: false, deadlineMs: 530,
        parts: P3.map((p) => ({ participant: p, pages: 0, bytes: 0, digest: `d-${p}`, part: { file: `${p}.empty` } })),
      }],
      send: [], // no COMMIT
      reply: null,
    });
    expect(step({ kind: 'manifestWritten', epoch: 2n }, 40).reply).toEqual({
      kind: 'committed', roundId: 'r2', jobId: JOB, epoch: 2n, parentEpoch: 1n, full: false, participants: 3, pages: 0, bytes: 0,
      timings: { prepareMs: 30, holdMs: 0, commitMs: 0, manifestMs: 10, totalMs: 40 },
    });
  });

  it('a mixed round sends COMMIT only to the participants that have a part to write; their DURABLE completes the manifest (invariant 3)', () => {
    const { c, step } = make();
    step(start(2n), 0);
    step(readOnly('n1', 2n), 10);
    step(prepared('n2', 2n, 3), 20);
    expect(step(readOnly('n3', 2n), 30)).toEqual({ persist: [], send: commits(2n, 2030).filter((x) => x.to === 'n2'), reply: null });
    expect(c.status()).toMatchObject({ phase: 'committing', waitingFor: ['n2'] });
    // A read-only participant's DURABLE (an agent answering a COMMIT it never got) is a duplicate; its failure is irrelevant.
    expect(step(durable('n1', 2n), 40)).toEqual(NONE);
    expect(step({ kind: 'participantFailed', participant: 'n3', reason: 'gone' }, 40)).toEqual(NONE);
    expect(c.status().ignored).toMatchObject({ duplicate: 1, irrelevant: 1 });
    const out = step(durable('n2', 2n), 50);
    expect(out.persist[0]?.parts).toEqual([
      { participant: 'n1', pages: 0, bytes: 0, digest: 'd-n1', part: { file: 'n1.empty' } },
      { participant: 'n2', pages: 3, bytes: 3 * 4096, digest: 'd-n2', part: { file: 'n2.pages' } },
      { participant: 'n3', pages: 0, bytes: 0, digest: 'd-n3', part: { file: 'n3.empty' } },
    ]);
    step({ kind: 'manifestWritten', epoch: 2n }, 60);
    // A commit-phase timeout names only who still had to write.
    step(start(3n), 100);
    step(readOnly('n1', 3n), 110);
    for (const p of ['n2', 'n3']) step(prepared(p, 3n), 120);
    expect(step({ kind: 'tick' }, 2120).reply).toMatchObject({ kind: 'aborted', phase: 'committing', culprits: ['n2', 'n3'], reason: 'no DURABLE from "n2", "n3" within 2000 ms' });
  });

  it('a held round of read-only votes replies prepareDone, and its proceed goes straight to the manifest (the cluster under a grid round)', () => {
    const { step } = make();
    step(start(1n, { holdAfterPrepare: true }), 0);
    for (const p of P3) step(readOnly(p, 1n), 10);
    const out = step({ kind: 'proceed', epoch: 1n }, 100);
    expect(out.send).toEqual([]);
    expect(out.persist.map((p) => [p.kind, p.parts.map((x) => x.part)])).toEqual([['writeManifest', P3.map((p) => ({ file: `${p}.empty` }))]]);
    expect(step({ kind: 'manifestWritten', epoch: 1n }, 150).reply).toMatchObject({ kind: 'committed', timings: { prepareMs: 10, holdMs: 90, commitMs: 0, manifestMs: 50 } });
  });

  it('a read-only vote whose part is not the snapshot prepared aborts the round, naming both digests (invariant 10)', () => {
    const { c, step } = make();
    step(start(1n), 0);
    const out = step(readOnly('n2', 1n, 'e-n2'), 10);
    const reason = 'participant "n2" wrote a part with digest e-n2, not the digest d-n2 it prepared: the part is not the snapshot prepared';
    expect(out.send).toEqual(aborts(1n, 110, reason));
    expect(out.reply).toMatchObject({ kind: 'aborted', phase: 'preparing', culprits: ['n2'], reason });
    // A malformed one is unexpected and changes nothing.
    step(start(2n), 20);
    const bad: RoundInput = { kind: 'prepared', participant: 'n1', epoch: 2n, pages: 0, bytes: 0, digest: 'd', readOnly: { part: null, digest: 'x'.repeat(17) } };
    expect(step(bad, 30)).toEqual(NONE);
    expect(c.status()).toMatchObject({ phase: 'preparing', waitingFor: P3 });
  });

  it('a prepareFailed aborts at once: ABORT to all, the culprit included (invariant 6)', () => {
    const { c, step } = make();
    step(start(1n), 0);
    step(prepared('n1', 1n), 10);
    const reason = 'participant "n2" failed to prepare: ENOSPC';
    expect(step({ kind: 'prepareFailed', participant: 'n2', epoch: 1n, reason: 'ENOSPC' }, 20)).toEqual({
      persist: [],
      send: aborts(1n, 120, reason),
      reply: { kind: 'aborted', roundId: 'r1', jobId: JOB, epoch: 1n, phase: 'preparing', reason, culprits: ['n2'], elapsedMs: 20 },
    });
    // n3's late answer is for a round that is over: stale (invariant 8).
    expect(step(prepared('n3', 1n), 30)).toEqual(NONE);
    expect(c.status()).toMatchObject({ phase: 'idle', roundsAborted: 1, ignored: { stale: 1, duplicate: 0, unexpected: 0, irrelevant: 0 } });
  });

  it('a participant that does not answer PREPARE: tick 1 ms before the deadline does nothing, at it aborts naming who (invariant 7)', () => {
    const { c, step } = make();
    step(start(1n), 1000);
    step(prepared('n1', 1n), 1500);
    expect(c.nextDeadlineMs()).toBe(2000);
    expect(step({ kind: 'tick' }, 1999)).toEqual(NONE);
    const reason = 'no PREPARED from "n2", "n3" within 1000 ms';
    expect(step({ kind: 'tick' }, 2000)).toEqual({
      persist: [],
      send: aborts(1n, 2100, reason),
      reply: { kind: 'aborted', roundId: 'r1', jobId: JOB, epoch: 1n, phase: 'preparing', reason, culprits: ['n2', 'n3'], elapsedMs: 1000 },
    });
    expect(step({ kind: 'tick' }, 5000)).toEqual(NONE);
  });

  it('an answer that arrives at the deadline does not count: the deadline is enforced first (invariant 7)', () => {
    const { step } = make();
    step(start(1n), 0);
    step(prepared('n1', 1n), 10);
    step(prepared('n2', 1n), 10);
    const out = step(prepared('n3', 1n), 1000);
    expect(out.send.map((s) => s.kind)).toEqual(['abort', 'abort', 'abort']);
    expect(out.reply).toMatchObject({ kind: 'aborted', phase: 'preparing', culprits: ['n3'] });
  });

  it('a participant failed by the detector mid-commit aborts; one already DURABLE does not (invariants 4, 6)', () => {
    const { c, step } = make();
    step(start(1n), 0);
    for (const p of P3) step(prepared(p, 1n), 100);
    step(durable('n1', 1n), 200);
    expect(step({ kind: 'participantFailed', participant: 'n1', reason: 'phi 12' }, 250)).toEqual(NONE);
    expect(step({ kind: 'participantFailed', participant: 'n9', reason: 'phi 12' }, 260)).toEqual(NONE);
    expect(c.status().ignored).toEqual({ stale: 0, duplicate: 0, unexpected: 0, irrelevant: 2 });
    const reason = 'participant "n2" was declared failed: phi 9';
    expect(step({ kind: 'participantFailed', participant: 'n2', reason: 'phi 9' }, 300)).toEqual({
      persist: [],
      send: aborts(1n, 400, reason),
      reply: { kind: 'aborted', roundId: 'r1', jobId: JOB, epoch: 1n, phase: 'committing', reason, culprits: ['n2'], elapsedMs: 300 },
    });
    // n3 finishing its flush afterwards persists nothing.
    expect(step(durable('n3', 1n), 310)).toEqual(NONE);
  });

  it('a durableFailed aborts in the commit phase, and a commit-phase timeout names who did not flush', () => {
    const a = make();
    a.step(start(1n), 0);
    for (const p of P3) a.step(prepared(p, 1n), 100);
    const reason = 'participant "n3" failed to make its part durable: EIO';
    expect(a.step({ kind: 'durableFailed', participant: 'n3', epoch: 1n, reason: 'EIO' }, 150)).toMatchObject({
      persist: [], send: aborts(1n, 250, reason), reply: { phase: 'committing', culprits: ['n3'] },
    });
    const b = make();
    b.step(start(1n), 0);
    for (const p of P3) b.step(prepared(p, 1n), 100);
    b.step(durable('n2', 1n), 200);
    expect(b.step({ kind: 'tick' }, 2099)).toEqual(NONE);
    expect(b.step({ kind: 'tick' }, 2100).reply).toMatchObject({
      kind: 'aborted', phase: 'committing', culprits: ['n1', 'n3'], reason: 'no DURABLE from "n1", "n3" within 2000 ms',
    });
  });

  it('manifestFailed aborts after every DURABLE: ABORT to all, no committed epoch (invariant 6)', () => {
    const { c, step } = make();
    expect(toManifest(step, 1n, 0).persist).toHaveLength(1);
    const reason = 'manifest write failed: ENOSPC';
    expect(step({ kind: 'manifestFailed', epoch: 1n, reason: 'ENOSPC' }, 300)).toEqual({
      persist: [],
      send: aborts(1n, 400, reason),
      reply: { kind: 'aborted', roundId: 'r1', jobId: JOB, epoch: 1n, phase: 'writingManifest', reason, culprits: [], elapsedMs: 300 },
    });
    expect(c.status()).toMatchObject({ roundsCommitted: 0, roundsAborted: 1 });
  });

  it('a manifest that does not report in time aborts; its late report is stale; participant failures meanwhile are irrelevant', () => {
    const { c, step } = make();
    toManifest(step, 1n, 0);
    expect(c.nextDeadlineMs()).toBe(700);
    expect(step({ kind: 'participantFailed', participant: 'n1', reason: 'x' }, 300)).toEqual(NONE);
    expect(step({ kind: 'cancel', epoch: 1n, reason: 'job stop' }, 300)).toEqual(NONE);
    expect(step({ kind: 'tick' }, 699)).toEqual(NONE);
    const out = step({ kind: 'tick' }, 700);
    expect(out.persist).toEqual([]);
    expect(out.send).toEqual(aborts(1n, 800, 'manifest write did not report within 500 ms (it may still land; this epoch is not recorded as committed)'));
    expect(out.reply).toMatchObject({ kind: 'aborted', phase: 'writingManifest', culprits: [] });
    expect(step({ kind: 'manifestWritten', epoch: 1n }, 710)).toEqual(NONE);
    expect(c.status().ignored).toEqual({ stale: 1, duplicate: 0, unexpected: 0, irrelevant: 2 });
  });

  it('messages for an older epoch are stale and ignored while the next round runs (invariants 1, 8)', () => {
    const { c, step } = make();
    step(start(1n), 0);
    step({ kind: 'prepareFailed', participant: 'n1', epoch: 1n, reason: 'no' }, 10);
    expect(step(start(2n, { parentEpoch: null, full: true }), 20).send).toEqual(prepares(2n, 1020, null, true));
    const old: RoundInput[] = [
      prepared('n2', 1n), durable('n2', 1n), { kind: 'prepareFailed', participant: 'n3', epoch: 1n, reason: 'late' },
      { kind: 'durableFailed', participant: 'n3', epoch: 1n, reason: 'late' }, { kind: 'manifestWritten', epoch: 1n },
      { kind: 'manifestFailed', epoch: 1n, reason: 'late' }, { kind: 'cancel', epoch: 1n, reason: 'late' },
      { kind: 'proceed', epoch: 1n }, prepared('n2', 3n),
    ];
    for (const input of old) expect(step(input, 30)).toEqual(NONE);
    expect(c.status()).toMatchObject({ phase: 'preparing', epoch: 2n, waitingFor: P3, ignored: { stale: 9 } });
    for (const p of P3) step(prepared(p, 2n), 40);
    expect(c.status().phase).toBe('committing');
  });

  it('duplicate answers are ignored, the first one wins (invariant 8)', () => {
    const { c, step } = make();
    step(start(1n), 0);
    step(prepared('n1', 1n, 5), 10);
    expect(step(prepared('n1', 1n, 7), 20)).toEqual(NONE);
    step(prepared('n2', 1n), 30);
    step(prepared('n3', 1n), 30);
    expect(step(prepared('n3', 1n), 40)).toEqual(NONE); // a late duplicate during the commit phase
    step(durable('n1', 1n), 50);
    expect(step({ kind: 'durable', participant: 'n1', epoch: 1n, part: 'other', digest: 'd-n1' }, 60)).toEqual(NONE);
    step(durable('n2', 1n), 70);
    const out = step(durable('n3', 1n), 80);
    expect(out.persist[0]?.parts[0]).toEqual({ participant: 'n1', pages: 5, bytes: 20480, digest: 'd-n1', part: { file: 'n1.pages' } });
    expect(step(durable('n3', 1n), 90)).toEqual(NONE);
    expect(c.status().ignored).toEqual({ stale: 0, duplicate: 4, unexpected: 0, irrelevant: 0 });
  });

  it('answers from strangers, out of phase or malformed are counted as unexpected and change nothing (invariant 8)', () => {
    const { c, step } = make();
    step(start(1n), 0);
    const bad: RoundInput[] = [
      prepared('n7', 1n), durable('n1', 1n) /* no COMMIT yet */, { kind: 'proceed', epoch: 1n } /* not held */,
      { kind: 'prepared', participant: 'n1', epoch: 1n, pages: -1, bytes: 0, digest: 'd' },
      { kind: 'prepared', participant: 'n1', epoch: 1n, pages: 1, bytes: 1.5, digest: 'd' },
      { kind: 'prepared', participant: 'n1', epoch: 1n, pages: 1, bytes: 1, digest: 'x'.repeat(17) },
      { kind: 'prepared', participant: '', epoch: 1n, pages: 1, bytes: 1, digest: 'd' },
      { kind: 'prepared', participant: 'n1', epoch: 1 as unknown as bigint, pages: 1, bytes: 1, digest: 'd' },
      { kind: 'manifestWritten', epoch: 1n } /* no manifest issued */, { kind: 'prepareFailed', participant: 'n7', epoch: 1n, reason: 'x' },
    ];
    for (const input of bad) expect(step(input, 10)).toEqual(NONE);
    expect(c.status()).toMatchObject({ phase: 'preparing', waitingFor: P3, ignored: { stale: 0, duplicate: 0, unexpected: 10, irrelevant: 0 } });
  });

  it('a DURABLE part whose digest is not the one PREPARED aborts the round, naming the participant and both digests (invariant 10)', () => {
    const { c, step } = make();
    step(start(1n), 0);
    for (const p of P3) step(prepared(p, 1n), 10);
    expect(step(durable('n1', 1n), 20)).toEqual(NONE);
    const reason = 'participant "n2" wrote a part with digest e-n2, not the digest d-n2 it prepared: the part is not the snapshot prepared';
    expect(step(durable('n2', 1n, 'e-n2'), 30)).toEqual({
      persist: [],
      send: aborts(1n, 130, reason),
      reply: { kind: 'aborted', roundId: 'r1', jobId: JOB, epoch: 1n, phase: 'committing', reason, culprits: ['n2'], elapsedMs: 30 },
    });
    // No manifest follows: the last DURABLE is for a round that is over.
    expect(step(durable('n3', 1n), 40)).toEqual(NONE);
    expect(c.status()).toMatchObject({ phase: 'idle', roundsCommitted: 0, roundsAborted: 1, ignored: { stale: 1 } });
  });

  it('an empty digest on either side is not compared; a malformed DURABLE digest is unexpected and changes nothing (invariants 8, 10)', () => {
    const { c, step } = make();
    step(start(1n), 0);
    step({ kind: 'prepared', participant: 'n1', epoch: 1n, pages: 1, bytes: 4096, digest: '' }, 10);
    step(prepared('n2', 1n), 10);
    step(prepared('n3', 1n), 10);
    expect(step(durable('n1', 1n, 'anything'), 20)).toEqual(NONE); // n1 prepared none: nothing to compare
    expect(step(durable('n2', 1n, ''), 20)).toEqual(NONE); // n2's level reports none on DURABLE
    expect(step(durable('n3', 1n, 'x'.repeat(17)), 20)).toEqual(NONE); // longer than maxIdChars
    expect(step({ ...durable('n3', 1n), digest: 7 } as unknown as RoundInput, 20)).toEqual(NONE);
    expect(c.status()).toMatchObject({ phase: 'committing', waitingFor: ['n3'], ignored: { unexpected: 2 } });
    const out = step(durable('n3', 1n), 30);
    expect(out.persist[0]?.parts.map((x) => [x.participant, x.digest])).toEqual([['n1', ''], ['n2', 'd-n2'], ['n3', 'd-n3']]);
  });

  it('a cancel aborts a live round with no culprit', () => {
    const { step } = make();
    step(start(1n), 0);
    expect(step({ kind: 'cancel', epoch: 1n, reason: 'job stopped' }, 5)).toEqual({
      persist: [],
      send: aborts(1n, 105, 'cancelled: job stopped'),
      reply: { kind: 'aborted', roundId: 'r1', jobId: JOB, epoch: 1n, phase: 'preparing', reason: 'cancelled: job stopped', culprits: [], elapsedMs: 5 },
    });
  });

  it('a held round replies prepareDone, sends COMMIT only on proceed, and aborts if no decision comes (nested use)', () => {
    const { c, step } = make();
    step(start(1n, { holdAfterPrepare: true }), 0);
    step(prepared('n1', 1n, 1), 100);
    step(prepared('n2', 1n, 2), 100);
    expect(step(prepared('n3', 1n, 3), 200)).toEqual({
      persist: [],
      send: [],
      reply: {
        kind: 'prepareDone', roundId: 'r1', jobId: JOB, epoch: 1n, pages: 6, bytes: 6 * 4096, prepareMs: 200,
        prepared: [
          { participant: 'n1', pages: 1, bytes: 4096, digest: 'd-n1' },
          { participant: 'n2', pages: 2, bytes: 8192, digest: 'd-n2' },
          { participant: 'n3', pages: 3, bytes: 12288, digest: 'd-n3' },
        ],
      },
    });
    expect(c.status()).toMatchObject({ phase: 'holding', waitingFor: [], deadlineMs: 3200 });
    expect(step({ kind: 'proceed', epoch: 1n }, 700)).toEqual({ persist: [], send: commits(1n, 2700), reply: null });
    expect(step({ kind: 'proceed', epoch: 1n }, 710)).toEqual(NONE);
    for (const p of P3) step(durable(p, 1n), 800);
    expect(step({ kind: 'manifestWritten', epoch: 1n }, 900).reply).toMatchObject({
      kind: 'committed', timings: { prepareMs: 200, holdMs: 500, commitMs: 100, manifestMs: 100, totalMs: 900 },
    });

    step(start(2n, { holdAfterPrepare: true }), 1000);
    for (const p of P3) step(prepared(p, 2n), 1100);
    expect(step({ kind: 'tick' }, 4099)).toEqual(NONE);
    expect(step({ kind: 'tick' }, 4100)).toEqual({
      persist: [],
      send: aborts(2n, 4200, 'no decision to proceed within 3000 ms'),
      reply: { kind: 'aborted', roundId: 'r2', jobId: JOB, epoch: 2n, phase: 'holding', reason: 'no decision to proceed within 3000 ms', culprits: [], elapsedMs: 3100 },
    });
    expect(c.status().ignored.duplicate).toBe(1);
  });

  it('rejects an empty participant list and other bad starts with a GridError, changing nothing', () => {
    const { c, step } = make();
    const before = c.status();
    const rejects = (input: StartInput, kind: string, message: RegExp, nowMs = 0): void => {
      let thrown: unknown;
      try {
        c.step(input, nowMs);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(GridError);
      expect((thrown as GridError).kind).toBe(kind);
      expect((thrown as GridError).message).toMatch(message);
    };
    rejects(start(1n, { participants: [] }), 'invalid-argument', /bad round participants \(0\)/);
    rejects(start(1n, { participants: ['a', 'b', 'a'] }), 'invalid-argument', /"a" is named twice/);
    rejects(start(1n, { participants: Array.from({ length: 9 }, (_, i) => `n${i}`) }), 'invalid-argument', /expected 1 to 8 ids/);
    rejects(start(1n, { participants: ['x'.repeat(17)] }), 'invalid-argument', /bad participant id/);
    rejects(start(1n, { jobId: 'other' }), 'invalid-argument', /runs the rounds of job "bank"/);
    rejects(start(0n), 'invalid-argument', /bad round epoch 0n/);
    rejects(start(2n, { full: false, parentEpoch: null }), 'invalid-argument', /needs a parent/);
    rejects(start(2n, { parentEpoch: 2n }), 'invalid-argument', /bad round parent epoch 2n/);
    rejects(start(1n, { roundId: '' }), 'invalid-argument', /bad round id/);
    expect(c.status()).toEqual(before);
    c.checkInvariants();

    step(start(5n), 100);
    rejects(start(6n), 'failed-precondition', /already runs round r5/, 200);
    expect(() => c.step({ kind: 'tick' }, 99)).toThrow(/bad round time 99/);
    step({ kind: 'cancel', epoch: 5n, reason: 'x' }, 200);
    rejects(start(5n), 'failed-precondition', /epoch 5 of job bank is not above 5/, 300);
    rejects(start(3n), 'failed-precondition', /not above 5/, 300);
    expect(c.status()).toMatchObject({ phase: 'idle', highestEpoch: 5n, roundsStarted: 1 });
  });

  it('a start after the running round\'s deadline ends that round first, in the same step', () => {
    const { step } = make();
    step(start(1n), 0);
    const out = step(start(2n), 1000);
    expect(out.send).toEqual([...aborts(1n, 1100, 'no PREPARED from "n1", "n2", "n3" within 1000 ms'), ...prepares(2n, 2000)]);
    expect(out.reply).toMatchObject({ kind: 'aborted', epoch: 1n });
  });

  it('cuts long reasons and long culprit lists', () => {
    const c = new RoundCoordinator(JOB, CONFIG);
    const many = Array.from({ length: 8 }, (_, i) => `p${i}`);
    c.step(start(1n, { participants: many }), 0);
    expect(c.step({ kind: 'tick' }, 1000).reply).toMatchObject({
      reason: 'no PREPARED from "p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7" within 1000 ms', culprits: many,
    });
    c.step(start(2n, { participants: ['a'] }), 1000);
    const out = c.step({ kind: 'prepareFailed', participant: 'a', epoch: 2n, reason: 'y'.repeat(100) }, 1001);
    expect(out.reply).toMatchObject({ reason: `participant "a" failed to prepare: ${'y'.repeat(40)}…` });
  });

  it('a single participant round commits; a restarted coordinator continues above the highest epoch it is given', () => {
    const c = new RoundCoordinator(JOB, CONFIG, 41n);
    expect(c.status().highestEpoch).toBe(41n);
    expect(() => c.step(start(41n, { participants: ['a'] }), 0)).toThrow(/not above 41/);
    c.step(start(nextEpoch(41n), { participants: ['a'] }), 0);
    c.step(prepared('a', 42n), 1);
    c.step(durable('a', 42n), 2);
    expect(c.step({ kind: 'manifestWritten', epoch: 42n }, 3).reply).toMatchObject({ kind: 'committed', epoch: 42n, parentEpoch: 41n });
    c.checkInvariants();
  });

  it('nextEpoch and config validation', () => {
    expect(nextEpoch(0n)).toBe(1n);
    expect(nextEpoch(7n)).toBe(8n);
    expect(() => nextEpoch(-1n)).toThrow(/bad highest epoch -1n/);
    expect(() => nextEpoch((1n << 64n) - 1n)).toThrow(/bad highest epoch/);
    expect(() => new RoundCoordinator(JOB, { ...CONFIG, commitTimeoutMs: 0 })).toThrow(/bad round commitTimeoutMs 0/);
    expect(() => new RoundCoordinator(JOB, { ...CONFIG, maxParticipants: 1.5 })).toThrow(/bad round maxParticipants 1.5/);
    expect(() => new RoundCoordinator('../x', CONFIG)).toThrow(/bad job/);
  });
});
