import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GridError } from '../../src/common/errors.js';
import {
  RoundCoordinator, type RoundConfig, type RoundInput, type RoundOutcome, type RoundStep, type StartInput,
} from '../../src/protocol/core/round.js';

// The round core under random schedules. A small simulated world answers what
// the core sends: each PREPARE / COMMIT / writeManifest becomes a pending
// answer that a later choice delivers (possibly as a failure, possibly twice,
// possibly never), while other choices inject detector verdicts, stale
// messages for other epochs, duplicates of past inputs, cancels, proceeds
// (held rounds), starts (some while busy, some with a used epoch, which must
// be refused without changing anything) and ticks. After every step:
// checkInvariants() (invariants 1-10 of src/protocol/core/round.ts). After the
// schedule a drain delivers what is pending and ticks past every deadline,
// and an observer that sees only inputs and outputs checks the trace:
//  - every started round has exactly one outcome, and nothing is sent or
//    persisted for its epoch afterwards (5);
//  - PREPARE went to every participant once, in the start step (2);
//  - committed ⇒ every participant was PREPARED before the COMMIT step (or,
//    when every one voted read-only, the manifest's); COMMIT went, in one
//    step, to exactly those that did not vote read-only, each DURABLE (after
//    COMMIT) before the one writeManifest, whose parts are the first DURABLE
//    answers and the read-only votes' parts; the manifest was reported
//    written in the step of the outcome; every answer counted arrived before
//    its deadline; no ABORT for that epoch; every part's digest agrees with
//    its PREPARED one (3, 4, 5, 7, 10);
//  - aborted ⇒ ABORT to every participant exactly once, in the step of the
//    outcome; a writeManifest only if it then failed or timed out; the abort
//    is explained by the input of that step or by a passed deadline (6, 7);
//    one explained by a DURABLE (or a read-only vote) is a part whose digest
//    differs from the one its participant PREPARED, both non-empty, and
//    names both (10).
// A participant sometimes votes read-only (its part with its PREPARED). In
// the faulty world a participant sometimes reports no digest ('') and
// sometimes writes a part that is not its snapshot (another digest).
// A fault-free world (no failures, no losses, long deadlines) must commit
// every round. The same seed gives the same schedule and the same trace.

const PEOPLE = ['a', 'b', 'c', 'd'];
const JOB = 'job1';

const FAULTY_CONFIG: RoundConfig = {
  prepareTimeoutMs: 600, holdTimeoutMs: 600, commitTimeoutMs: 800, manifestTimeoutMs: 300, abortTimeoutMs: 50,
  maxParticipants: 4, maxReasonChars: 32, maxIdChars: 8,
};
const CALM_CONFIG: RoundConfig = {
  ...FAULTY_CONFIG, prepareTimeoutMs: 100_000, holdTimeoutMs: 100_000, commitTimeoutMs: 100_000, manifestTimeoutMs: 100_000,
};

interface Choice { op: number; arg: number }
interface World { participants: number; rounds: number; holdMask: number; faults: boolean }
interface Pending { type: 'prepare' | 'commit' | 'manifest'; participant: string; epoch: bigint }
interface TraceEntry { nowMs: number; input: RoundInput; out: RoundStep | null; refused: string | null }

// Unbiased: fast-check favours the ends of small ranges and short arrays,
// which would leave the middle choices (cancels, rogue answers) and long
// schedules nearly untried.
const choiceArb: fc.Arbitrary<Choice> = fc.noBias(fc.record({ op: fc.nat(99), arg: fc.nat(9999) }));
const worldArb = (faults: boolean): fc.Arbitrary<World> =>
  fc.record({ participants: fc.integer({ min: 1, max: 4 }), rounds: fc.integer({ min: 1, max: 4 }), holdMask: fc.nat(15), faults: fc.constant(faults) });
const scheduleArb = (faults: boolean) => fc.tuple(worldArb(faults), fc.noBias(fc.array(choiceArb, { maxLength: 120 })));

/** The digest of the snapshot `participant` prepares for `epoch` (a part written from it has the same). */
const snapshotDigest = (participant: string, epoch: bigint): string => `h${participant}${epoch}`;
/** Invariant 10's agreement, written out: '' is no digest. */
const agree = (prepared: string, durable: string): boolean => prepared === '' || durable === '' || prepared === durable;

/** Runs the core in the simulated world; returns the trace and the started rounds. */
function simulate(world: World, choices: readonly Choice[]): { trace: TraceEntry[]; starts: StartInput[]; core: RoundCoordinator } {
  const config = world.faults ? FAULTY_CONFIG : CALM_CONFIG;
  const core = new RoundCoordinator(JOB, config);
  const participants = PEOPLE.slice(0, world.participants);
  const trace: TraceEntry[] = [];
  const starts: StartInput[] = [];
  let pending: Pending[] = [];
  let nowMs = 0;
  let lastCommitted: bigint | null = null;

  const feed = (input: RoundInput): void => {
    const before = core.status();
    let out: RoundStep | null = null;
    let refused: string | null = null;
    try {
      out = core.step(input, nowMs);
    } catch (err) {
      // Only a start may be refused, with a GridError, changing nothing.
      expect(input.kind).toBe('start');
      expect(err).toBeInstanceOf(GridError);
      expect(core.status()).toEqual(before);
      refused = (err as GridError).message;
    }
    core.checkInvariants();
    trace.push({ nowMs, input, out, refused });
    if (out === null) return;
    if (input.kind === 'start') starts.push(input);
    for (const s of out.send) if (s.kind !== 'abort') pending.push({ type: s.kind, participant: s.to, epoch: s.epoch });
    for (const p of out.persist) pending.push({ type: 'manifest', participant: '', epoch: p.epoch });
    if (out.reply?.kind === 'committed') lastCommitted = out.reply.epoch;
  };
  /**
   * The answer to `p`; with `mayFail`, a failure 1 time in 9 (1 in 3 for a manifest, whose
   * window is short), and now and then no digest or a part that is not the snapshot prepared.
   */
  const answer = (p: Pending, mayFail: boolean, arg: number): RoundInput => {
    const { participant, epoch } = p;
    const fail = mayFail && arg % (p.type === 'manifest' ? 3 : 9) === 0;
    switch (p.type) {
      case 'prepare': {
        if (fail) return { kind: 'prepareFailed', participant, epoch, reason: `E${arg}` };
        const digest = mayFail && arg % 7 === 1 ? '' : snapshotDigest(participant, epoch);
        if (arg % 6 !== 3) return { kind: 'prepared', participant, epoch, pages: arg % 5, bytes: (arg % 5) * 4096, digest };
        // A read-only vote: its part comes with it (now and then not the snapshot prepared, or with no digest).
        const written = mayFail && arg % 11 === 5 ? `x${participant}${epoch}` : mayFail && arg % 13 === 2 ? '' : snapshotDigest(participant, epoch);
        return { kind: 'prepared', participant, epoch, pages: 0, bytes: 0, digest, readOnly: { part: { participant, arg, readOnly: true }, digest: written } };
      }
      case 'commit': {
        if (fail) return { kind: 'durableFailed', participant, epoch, reason: `W${arg}` };
        const written = mayFail && arg % 11 === 5 ? `x${participant}${epoch}` : snapshotDigest(participant, epoch);
        return { kind: 'durable', participant, epoch, part: { participant, arg }, digest: mayFail && arg % 7 === 2 ? '' : written };
      }
      case 'manifest':
        return fail ? { kind: 'manifestFailed', epoch, reason: `M${arg}` } : { kind: 'manifestWritten', epoch };
    }
  };
  const startNext = (arg: number): void => {
    const highest = core.status().highestEpoch;
    if (starts.length >= world.rounds && arg % 5 !== 0) return void feed({ kind: 'tick' });
    const reuse = arg % 5 === 0 && highest > 0n; // must be refused
    const epoch = reuse ? highest : highest + 1n + BigInt(arg % 3);
    const full = lastCommitted === null || arg % 7 === 0;
    feed({
      kind: 'start', roundId: `r${epoch}`, jobId: JOB, epoch, parentEpoch: lastCommitted, full,
      participants, holdAfterPrepare: ((world.holdMask >> starts.length) & 1) === 1,
    });
  };

  startNext(1);
  for (const { op, arg } of choices) {
    nowMs += world.faults ? arg % 40 : arg % 3;
    const epoch = core.status().epoch;
    const anyone = [...participants, 'zz'][arg % (participants.length + 1)]!;
    if (op < 50 && pending.length > 0) {
      // Half the time an answer for the running round, else any (old ones are stale by now).
      const live = pending.flatMap((p, j) => (p.epoch === epoch ? [j] : []));
      const i = arg % 2 === 0 && live.length > 0 ? live[(arg >> 1) % live.length]! : arg % pending.length;
      const p = pending[i]!;
      if (arg % 4 !== 0) pending = pending.filter((_, j) => j !== i); // else it stays: a duplicate later
      feed(answer(p, world.faults, arg));
    } else if (op < 60 && world.faults && pending.length > 0) {
      pending = pending.filter((_, j) => j !== arg % pending.length); // lost
    } else if (op < 75) {
      nowMs += world.faults ? arg % 700 : arg % 5;
      feed({ kind: 'tick' });
    } else if (op < 80 && world.faults) {
      feed({ kind: 'participantFailed', participant: anyone, reason: `phi ${arg}` });
    } else if (op < 88) {
      // Stale (another epoch) or, one time in three, rogue: unasked for, for the current epoch.
      const highest = core.status().highestEpoch;
      const target = arg % 3 === 0 && epoch !== null ? epoch
        : arg % 2 === 0 && highest > 1n ? highest - 1n : highest + 1n + BigInt(arg % 4);
      const type = (['prepare', 'commit', 'manifest', 'cancel'] as const)[(arg >> 2) % 4]!;
      if (type === 'cancel') feed(world.faults ? { kind: 'cancel', epoch: target, reason: 'rogue' } : { kind: 'tick' });
      else feed(answer({ type, participant: anyone, epoch: target }, world.faults, arg));
    } else if (op < 92 && epoch !== null) {
      feed({ kind: 'proceed', epoch });
    } else if (op < 94 && world.faults && epoch !== null) {
      feed({ kind: 'cancel', epoch, reason: 'operator' });
    } else if (op < 98) {
      startNext(arg);
    } else if (trace.length > 0) {
      const past = trace[arg % trace.length]!.input;
      feed(past.kind === 'start' ? { kind: 'tick' } : past);
    } else {
      feed({ kind: 'tick' });
    }
  }
  // Drain: answer everything in order (failures still possible in the faulty
  // world), decide held rounds, start the rounds not yet started, then tick
  // past every deadline.
  for (let guard = 0; guard < 1000; guard += 1) {
    const status = core.status();
    if (status.phase === 'holding') feed({ kind: 'proceed', epoch: status.epoch! });
    else if (world.faults && status.phase === 'writingManifest' && guard % 4 === 0) {
      feed({ kind: 'cancel', epoch: status.epoch!, reason: 'late' }); // too late: must change nothing
      feed({ kind: 'participantFailed', participant: participants[0]!, reason: 'late' });
    }
    else if (pending.length > 0) feed(answer(pending.shift()!, world.faults, (guard * 7919) % 10007));
    else if (status.phase !== 'idle') {
      nowMs = Math.max(nowMs, core.nextDeadlineMs()!);
      feed({ kind: 'tick' });
    } else if (starts.length < world.rounds) startNext(1);
    else break;
  }
  expect(core.status().phase).toBe('idle');
  return { trace, starts, core };
}

/** The observer: checks the trace against the properties listed at the top. */
function checkTrace(trace: readonly TraceEntry[], starts: readonly StartInput[]): void {
  const indexed = trace.map((e, i) => ({ ...e, i }));
  for (const start of starts) {
    const { epoch, participants } = start;
    const startIdx = trace.findIndex((e) => e.input === start);
    const steps = indexed.filter((e) => e.out !== null && e.i >= startIdx);
    const sends = steps.flatMap((e) => e.out!.send.filter((s) => s.epoch === epoch).map((s) => ({ ...s, i: e.i })));
    const persists = steps.flatMap((e) => e.out!.persist.filter((p) => p.epoch === epoch).map((p) => ({ ...p, i: e.i })));
    const outcomes = steps.filter((e) => (e.out!.reply?.kind === 'committed' || e.out!.reply?.kind === 'aborted') && e.out!.reply.epoch === epoch);
    expect(outcomes).toHaveLength(1);
    const end = outcomes[0]!;
    const outcome = end.out!.reply as RoundOutcome;
    const endIdx = end.i;
    expect(sends.every((s) => s.i <= endIdx) && persists.every((p) => p.i <= endIdx)).toBe(true);
    const ofKind = (kind: string) => sends.filter((s) => s.kind === kind);
    expect(ofKind('prepare').map((s) => [s.to, s.i])).toEqual(participants.map((p) => [p, startIdx]));
    /** Inputs of `kind` for this epoch in steps (from, to]. */
    const inputs = (kind: RoundInput['kind'], from: number, to: number) =>
      indexed.filter((e) => e.i > from && e.i <= to && e.input.kind === kind && 'epoch' in e.input && e.input.epoch === epoch);
    const firstFrom = (list: ReturnType<typeof inputs>, p: string) => list.find((e) => 'participant' in e.input && e.input.participant === p);
    expect(persists.length).toBeLessThanOrEqual(1);
    const manifest = persists[0];
    if (manifest !== undefined) {
      // The first report of the manifest decides, unless its deadline passed before it.
      const report = [...inputs('manifestWritten', manifest.i, endIdx), ...inputs('manifestFailed', manifest.i, endIdx)]
        .sort((x, y) => x.i - y.i)[0];
      if (report !== undefined && report.nowMs < manifest.deadlineMs) expect(report.i).toBe(endIdx);
    }

    if (outcome.kind === 'committed') {
      expect(ofKind('abort')).toEqual([]);
      expect(manifest).toBeDefined();
      // Every read-only vote: no COMMIT, and the manifest comes in the step of the last PREPARED (or proceed).
      const commitIdx = ofKind('commit')[0]?.i ?? manifest!.i;
      const preparedIn = inputs('prepared', startIdx, commitIdx);
      const prepOf = (p: string) => firstFrom(preparedIn, p)!.input as Extract<RoundInput, { kind: 'prepared' }>;
      const writers = participants.filter((p) => prepOf(p).readOnly === undefined);
      expect(ofKind('commit').map((s) => [s.to, s.i])).toEqual(writers.map((p) => [p, commitIdx]));
      const durableIn = inputs('durable', commitIdx, manifest!.i);
      /** The part and its digest: a read-only vote's, or the first DURABLE after COMMIT. */
      const partOf = (p: string) => prepOf(p).readOnly ?? (firstFrom(durableIn, p)!.input as { part: unknown; digest: string });
      for (const p of participants) expect(firstFrom(preparedIn, p)!.nowMs).toBeLessThan(ofKind('prepare')[0]!.deadlineMs);
      for (const p of writers) expect(firstFrom(durableIn, p)!.nowMs).toBeLessThan(ofKind('commit')[0]!.deadlineMs);
      expect(manifest!.parts.map((x) => [x.participant, x.part])).toEqual(participants.map((p) => [p, partOf(p).part]));
      for (const p of participants) {
        const prep = prepOf(p).digest;
        expect(agree(prep, partOf(p).digest)).toBe(true);
        expect(manifest!.parts.find((x) => x.participant === p)!.digest).toBe(prep);
      }
      expect(manifest!.i).toBeLessThan(endIdx);
      expect(end.input).toEqual({ kind: 'manifestWritten', epoch });
      expect(end.nowMs).toBeLessThan(manifest!.deadlineMs);
      expect(outcome.timings.totalMs).toBe(end.nowMs - trace[startIdx]!.nowMs);
    } else {
      expect(ofKind('abort').map((s) => [s.to, s.i])).toEqual(participants.map((p) => [p, endIdx]));
      expect(outcome.culprits.every((c) => participants.includes(c))).toBe(true);
      const input = end.input;
      if (manifest !== undefined) {
        // Once the manifest is issued only its own report, or its deadline, ends the round.
        expect(outcome.phase).toBe('writingManifest');
        expect(input.kind === 'manifestFailed' || outcome.reason.startsWith('manifest write did not report'), outcome.reason).toBe(true);
      }
      if (input.kind === 'durable' && input.epoch === epoch) {
        // Only a part that is not the snapshot prepared ends a round on DURABLE (10).
        const commitIdx = ofKind('commit')[0]!.i;
        const prep = (firstFrom(inputs('prepared', startIdx, commitIdx), input.participant)!.input as { digest: string }).digest;
        expect(prep !== '' && input.digest !== '' && prep !== input.digest).toBe(true);
        expect(outcome).toMatchObject({ phase: 'committing', culprits: [input.participant] });
        expect(outcome.reason).toContain(`digest ${input.digest}, not the digest ${prep} it prepared`);
      }
      if (input.kind === 'prepared' && input.epoch === epoch && input.readOnly !== undefined && outcome.reason.includes('is not the snapshot prepared')) {
        // A read-only vote's part that is not its snapshot (10).
        expect(input.digest !== '' && input.readOnly.digest !== '' && input.digest !== input.readOnly.digest).toBe(true);
        expect(outcome).toMatchObject({ phase: 'preparing', culprits: [input.participant] });
      }
      const explained =
        ((input.kind === 'durable' || (input.kind === 'prepared' && input.readOnly !== undefined)) && input.epoch === epoch && outcome.reason.includes('is not the snapshot prepared')) ||
        (input.kind === 'cancel' && input.epoch === epoch && outcome.reason.startsWith('cancelled')) ||
        (input.kind === 'manifestFailed' && input.epoch === epoch && manifest !== undefined) ||
        ((input.kind === 'prepareFailed' || input.kind === 'durableFailed' || input.kind === 'participantFailed') &&
          outcome.culprits.length === 1 && outcome.culprits[0] === input.participant) ||
        outcome.reason.startsWith('no ') || outcome.reason.startsWith('manifest write did not report');
      expect(explained, outcome.reason).toBe(true);
      if (outcome.reason.startsWith('no PREPARED')) expect(end.nowMs).toBeGreaterThanOrEqual(ofKind('prepare')[0]!.deadlineMs);
      if (outcome.reason.startsWith('no DURABLE')) expect(end.nowMs).toBeGreaterThanOrEqual(ofKind('commit')[0]!.deadlineMs);
      if (outcome.reason.startsWith('manifest write did not')) expect(end.nowMs).toBeGreaterThanOrEqual(manifest!.deadlineMs);
    }
    const held = steps.filter((e) => e.out!.reply?.kind === 'prepareDone' && e.out!.reply.epoch === epoch);
    expect(held.length).toBeLessThanOrEqual(start.holdAfterPrepare === true ? 1 : 0);
  }
}

function serialize(trace: readonly TraceEntry[]): string {
  return JSON.stringify(trace, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}

describe('RoundCoordinator under random schedules', () => {
  it('keeps its invariants after every step and ends every round exactly once, explained (faulty world)', () => {
    fc.assert(
      fc.property(scheduleArb(true), ([world, choices]) => {
        const { trace, starts } = simulate(world, choices);
        checkTrace(trace, starts);
      }),
      { numRuns: 400 },
    );
  });

  it('commits every round when nothing fails and every answer arrives (calm world)', () => {
    fc.assert(
      fc.property(scheduleArb(false), ([world, choices]) => {
        const { trace, starts, core } = simulate(world, choices);
        checkTrace(trace, starts);
        expect(starts).toHaveLength(world.rounds);
        expect(core.status()).toMatchObject({ roundsCommitted: world.rounds, roundsAborted: 0 });
      }),
      { numRuns: 200 },
    );
  });

  it('replays: the same seed gives the same schedules and the same traces', () => {
    const sample = () => fc.sample(scheduleArb(true), { seed: 20240611, numRuns: 20 });
    const first = sample();
    expect(sample()).toEqual(first);
    const traces = first.map(([world, choices]) => serialize(simulate(world, choices).trace));
    const again = first.map(([world, choices]) => serialize(simulate(world, choices).trace));
    expect(again).toEqual(traces);
    expect(traces.some((t) => t.includes('"committed"')) && traces.some((t) => t.includes('"aborted"'))).toBe(true);
  });

  it('the faulty world does exercise invariant 10: some rounds abort on a part that is not the snapshot prepared', () => {
    const runs = fc.sample(scheduleArb(true), { seed: 20240611, numRuns: 200 }).map(([world, choices]) => simulate(world, choices).trace);
    const digestAborts = runs.flatMap((t) => t).filter((e) => e.out?.reply?.kind === 'aborted' && e.out.reply.reason.includes('is not the snapshot prepared'));
    expect(digestAborts.length).toBeGreaterThan(0);
    expect(digestAborts.every((e) => e.input.kind === 'durable' || (e.input.kind === 'prepared' && e.input.readOnly !== undefined))).toBe(true);
    // Read-only votes are exercised too: rounds committed with no COMMIT to some participants, or none at all.
    const readOnlyCommits = runs.flatMap((t) => t).filter((e) => e.out?.persist.length === 1 && e.input.kind === 'prepared' && e.input.readOnly !== undefined);
    expect(readOnlyCommits.length).toBeGreaterThan(0);
  });
});
