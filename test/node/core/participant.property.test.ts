import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LOCAL, NodeParticipant, type ParticipantConfig, type ParticipantInput, type ParticipantStep, type UnitOp } from '../../../src/node/core/participant.js';
import type { AgentRequest } from '../../../src/protocol/messages.js';

// The participant core under random schedules, against a naive model that
// sees only inputs and outputs. Two jobs: JOB is a coordinator's (lease-bound,
// rounds of PREPARE / COMMIT / ABORT), OWN is the agent's own (no lease, local
// checkpoints on request and every INTERVAL_MS). The units port is modelled
// as queues: a snapshot or write op is outstanding until the schedule
// reports its result (in order, as the shell performs them). After every
// step checkInvariants() runs, and the observer checks (invariants of
// src/node/core/participant.ts):
//  P1. freeze and thaw alternate per job, and a job is never left frozen
//      past freezeTimeoutMs after the step that froze it;
//  P2. snapshot sends name strictly growing epochs per job; PREPARED for
//      epoch e answers the last PREPARE (of e), and DURABLE for e only
//      follows a PREPARED for e with no ABORT of e in between;
//  P3. a call from an older incarnation of its coordinator than one seen
//      gets a refusal and nothing else;
//  P4. the model's lease of JOB (start + leaseMs, renewed to sentAtMs +
//      leaseMs by answers naming the job) is never outlived: in the first
//      step at or past it a live job is killed (without grace), and no kill
//      comes before it without a cause; mayRun is false from that instant;
//  P7. no freeze and no second write while a write of the job runs;
//  write: COMMIT answers nothing but one write op; DURABLE (or, after an
//      ABORT of the epoch, a refusal and an unconfirmed settle) comes with
//      its `written`; a failed write is refused with an unconfirmed settle;
//      a snapshot of no page is a read-only vote: its write op follows the
//      snapshot, and its `written` answers the PREPARE with PREPARED
//      carrying the part; a COMMIT of the epoch whose part is written (a
//      read-only vote, or a retry) is answered DURABLE again, nothing
//      rewritten;
//  settle: a durable part is settled exactly once: confirmed by the next
//      PREPARE that names it as parent, else unconfirmed (another PREPARE,
//      an ABORT of it); summary().lastEpoch follows the confirmations;
//  local: a local checkpoint takes epoch highest+1, full iff forced, no
//      parent yet or fullEvery reached (else on the newest committed), and
//      COMMITTED comes with its `written`; one asked while a local step
//      runs joins it (issue 8): no answer until that step ends, then the
//      same answer as the step's own (a full one asked while an incremental
//      one runs is refused; a round's step still refuses it);
//      periodic ones fall due INTERVAL_MS after the spawn or the end of the
//      last step, are skipped while a step runs, and answer nobody;
//  and every call is answered at most once.

const CONFIG: ParticipantConfig = { nodeId: 'n1', incarnation: 1n, capacityUnits: 8, heartbeatIntervalMs: 50, freezeTimeoutMs: 100, maxJobs: 4, defaultFullEvery: 8 };
const JOB = 'job';
const OWN = 'own';
const LEASE_MS = 500;
const INTERVAL_MS = 150;
const FULL_EVERY = 3;

type Which = 'job' | 'own';
type Cmd =
  | { k: 'start'; j: Which } | { k: 'spawned'; j: Which; outcome: 'ok' | 'corrupt' | 'failed' | 'restored' }
  | { k: 'prepare'; epoch: number; next: boolean; parent: 'written' | 'none' | 'other' }
  | { k: 'snap'; j: Which; ok: boolean; empty: boolean } | { k: 'write'; j: Which; ok: boolean }
  | { k: 'commit'; epoch: number; current: boolean } | { k: 'abort'; epoch: number; current: boolean } | { k: 'stop'; j: Which }
  | { k: 'beat'; backMs: number; leased: boolean } | { k: 'exit'; j: Which; ok: boolean } | { k: 'tick' } | { k: 'bump' } | { k: 'old' }
  | { k: 'local'; j: Which; full: boolean }
  /** The next step of a well-behaved coordinator's round of JOB (snapshot result, COMMIT, write result or the next PREPARE). */
  | { k: 'round'; empty: boolean };

const epochArb = fc.integer({ min: 1, max: 8 });
const whichArb = fc.constantFrom<Which>('job', 'own');
/** Mostly true. */
const likely = fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) });
/** Mostly false (a snapshot with no page, a read-only vote). */
const unlikely = likely.map((x) => !x);
/** Results come for JOB's round more often: it needs several in a row (snapshot, write) before its lease or freeze runs out. */
const resultOf = fc.constantFrom<Which>('job', 'job', 'own');
const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 1, arbitrary: whichArb.map<Cmd>((j) => ({ k: 'start', j })) },
  { weight: 2, arbitrary: fc.record({ j: whichArb, outcome: fc.constantFrom('ok', 'ok', 'corrupt', 'failed', 'restored') as fc.Arbitrary<'ok' | 'corrupt' | 'failed' | 'restored'> }).map<Cmd>((r) => ({ k: 'spawned', ...r })) },
  { weight: 3, arbitrary: fc.record({ epoch: epochArb, next: likely, parent: fc.constantFrom('written', 'written', 'none', 'other') as fc.Arbitrary<'written' | 'none' | 'other'> }).map<Cmd>((r) => ({ k: 'prepare', ...r })) },
  { weight: 5, arbitrary: fc.record({ j: resultOf, ok: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }), empty: unlikely }).map<Cmd>((r) => ({ k: 'snap', ...r })) },
  { weight: 4, arbitrary: fc.record({ j: resultOf, ok: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }) }).map<Cmd>((r) => ({ k: 'write', ...r })) },
  { weight: 3, arbitrary: fc.record({ epoch: epochArb, current: likely }).map<Cmd>((r) => ({ k: 'commit', ...r })) },
  { weight: 1, arbitrary: fc.record({ epoch: epochArb, current: fc.boolean() }).map<Cmd>((r) => ({ k: 'abort', ...r })) },
  { weight: 1, arbitrary: whichArb.map<Cmd>((j) => ({ k: 'stop', j })) },
  { weight: 3, arbitrary: fc.record({ backMs: fc.integer({ min: 0, max: 400 }), leased: likely }).map<Cmd>((r) => ({ k: 'beat', ...r })) },
  // Units exit 0, or (rarely) fail: a failure mid-round thaws and drops the round (P5).
  { weight: 1, arbitrary: fc.record({ j: whichArb, ok: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }) }).map<Cmd>((r) => ({ k: 'exit', ...r })) },
  { weight: 2, arbitrary: fc.constant<Cmd>({ k: 'tick' }) },
  { weight: 1, arbitrary: fc.constant<Cmd>({ k: 'bump' }) },
  { weight: 1, arbitrary: fc.constant<Cmd>({ k: 'old' }) },
  { weight: 3, arbitrary: fc.record({ j: fc.constantFrom<Which>('own', 'own', 'own', 'job'), full: fc.boolean() }).map<Cmd>((r) => ({ k: 'local', ...r })) },
  { weight: 6, arbitrary: unlikely.map<Cmd>((empty) => ({ k: 'round', empty })) },
);
/** Mostly short gaps (a round fits in a freeze timeout), sometimes long ones (leases lapse, freezes time out, periodic turns fall due). */
const gapArb = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 20 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 300 }) });
/** Each schedule starts both jobs (the rest may stop, fence and restart them). */
const scheduleArb = fc.array(fc.tuple(gapArb, cmdArb), { minLength: 10, maxLength: 100, size: 'max' })
  .map((rest): Array<[number, Cmd]> => [
    [0, { k: 'start', j: 'job' }], [2, { k: 'spawned', j: 'job', outcome: 'ok' }], [0, { k: 'start', j: 'own' }], [1, { k: 'spawned', j: 'own', outcome: 'ok' }], ...rest,
  ]);

const seen = {
  prepared: 0, readOnly: 0, durableAgain: 0, durable: 0, confirmed: 0, unconfirmed: 0, abortedWrites: 0, failedWrites: 0, leaseFences: 0, freezeTimeouts: 0, staleRefusals: 0, renewals: 0,
  localCommitted: 0, localIncremental: 0, periodic: 0, periodicSkipped: 0, busyRefusals: 0, snapshotFailures: 0, localJoins: 0, joinedAnswered: 0,
};

interface Write { epoch: bigint; reqId: number; to: string; local: boolean; full: boolean; parentEpoch: bigint | null; vote?: boolean }

/** The model of one job, fed only by inputs and outputs. */
class JobModel {
  frozen = false;
  frozenAt = 0;
  frozenEpoch = 0n;
  frozenFull = false;
  /** The highest epoch this job used (snapshot sends, restores). */
  highest = 0n;
  /** Snapshot and write ops sent and not yet reported on, in order. */
  snaps: bigint[] = [];
  writes: Write[] = [];
  /** The write the core waits for (P7: at most one). */
  writing: Write | null = null;
  startReq = -1;
  // JOB: lease and round bookkeeping.
  live = false;
  leaseUntil = 0;
  lastPrepare: { reqId: number; epoch: bigint } | null = null;
  prepared = new Set<bigint>();
  aborted = new Set<bigint>();
  writtenPart: bigint | null = null;
  /** Pages of each epoch's snapshot, as the snapshot result said (a written part holds them). */
  stagedPages = new Map<bigint, number>();
  // Both: the newest epoch known committed with this node's pages, and the chain since the last full one.
  lastEpoch: bigint | null = null;
  sinceFull = 0;
  // OWN: the step being frozen (explicit or periodic) and the next periodic turn.
  localStep: { reqId: number; to: string; full: boolean; parentEpoch: bigint | null } | null = null;
  nextLocal: number | null = null;
  /** OWN: explicit requests that joined the running local step, answered when it ends. */
  joined: number[] = [];
  /** The epoch of the local step running (frozen or written), if any. */
  get stepEpoch(): bigint | null {
    return this.writing?.epoch ?? (this.frozen ? this.frozenEpoch : null);
  }
  constructor(readonly id: string) {}
  get busy(): boolean {
    return this.frozen || this.writing !== null;
  }
}

function run(schedule: Array<[number, Cmd]>): void {
  const p = new NodeParticipant(CONFIG);
  let now = 0;
  let reqId = 0;
  let localReq = 0;
  let inc = 1n;
  let maxInc = 0n;
  const answered = new Set<number>();
  const m = { job: new JobModel(JOB), own: new JobModel(OWN) };
  const settled = new Set<string>();

  for (const [dt, scheduled] of schedule) {
    now += dt;
    const J = m.job;
    const O = m.own;
    const cmd: Cmd = scheduled.k !== 'round' ? scheduled
      : J.snaps.length > 0 ? { k: 'snap', j: 'job', ok: true, empty: scheduled.empty }
      : J.writes.length > 0 ? { k: 'write', j: 'job', ok: true }
      : J.prepared.has(J.highest) ? { k: 'commit', epoch: 0, current: true }
      : { k: 'prepare', epoch: 0, next: true, parent: 'written' };
    let req: AgentRequest | null = null;
    let from = 'c';
    let other: ParticipantInput | null = null;
    let reqInc = inc;
    switch (cmd.k) {
      case 'start':
        if (cmd.j === 'job') req = { kind: 'startJob', jobId: JOB, units: ['a', 'b'], sources: [], leaseMs: LEASE_MS, gen: reqId + 1 };
        else {
          req = { kind: 'startJob', jobId: OWN, units: ['x'], sources: [], leaseMs: null, gen: reqId + 1, intervalMs: INTERVAL_MS, fullEvery: FULL_EVERY };
          from = LOCAL;
          reqInc = 1n;
        }
        break;
      case 'spawned': {
        const jm = m[cmd.j];
        other = {
          kind: 'spawned', jobId: jm.id, reqId: jm.startReq,
          corrupt: cmd.outcome === 'corrupt' ? { store: 's', epoch: 1n, reason: 'bad' } : null,
          ...(cmd.outcome === 'failed' ? { failed: 'store unreachable' } : {}),
          ...(cmd.outcome === 'restored' ? { restored: { epoch: jm.highest, highestEpoch: jm.highest + 2n, chainLength: 2 } } : {}),
        };
        break;
      }
      case 'prepare': {
        const epoch = cmd.next ? J.highest + 1n : BigInt(cmd.epoch);
        const parentEpoch = cmd.parent === 'none' ? null : cmd.parent === 'written' ? (J.writtenPart ?? J.highest) : J.highest;
        req = { kind: 'prepare', jobId: JOB, epoch, parentEpoch, full: parentEpoch === null };
        break;
      }
      case 'snap': case 'write': {
        const jm = m[cmd.j];
        if (cmd.k === 'snap' && jm.snaps.length > 0) {
          const epoch = jm.snaps.shift()!;
          const pages = cmd.empty ? 0 : 1;
          jm.stagedPages.set(epoch, pages);
          other = cmd.ok ? { kind: 'snapshotTaken', jobId: jm.id, epoch, pages, bytes: pages * 4096 } : { kind: 'snapshotFailed', jobId: jm.id, epoch, stage: 'snapshot', reason: 'ENOMEM' };
        } else if (cmd.k === 'write' && jm.writes.length > 0) {
          const w = jm.writes.shift()!;
          other = cmd.ok ? { kind: 'written', jobId: jm.id, epoch: w.epoch, reqId: w.reqId } : { kind: 'partFailed', jobId: jm.id, epoch: w.epoch, reqId: w.reqId, to: w.to, reason: 'EIO' };
        } else other = { kind: 'tick' };
        break;
      }
      case 'commit': req = { kind: 'commit', jobId: JOB, epoch: cmd.current ? J.highest : BigInt(cmd.epoch) }; break;
      case 'abort': req = { kind: 'abort', jobId: JOB, epoch: cmd.current ? J.highest : BigInt(cmd.epoch) }; break;
      case 'stop':
        req = { kind: 'stopJob', jobId: m[cmd.j].id, gen: reqId + 1 }; // above every start so far
        if (cmd.j === 'own') {
          from = LOCAL;
          reqInc = 1n;
        }
        break;
      case 'beat': other = { kind: 'heartbeatAnswer', sentAtMs: Math.max(0, now - cmd.backMs), answer: { known: true, leasedJobs: cmd.leased ? [JOB] : [], leaseMs: LEASE_MS } }; break;
      case 'exit': other = { kind: 'unitsExited', jobId: m[cmd.j].id, ok: cmd.ok, reason: 'exit' }; break;
      case 'tick': other = { kind: 'tick' }; break;
      case 'bump': inc += 1n; reqInc = inc; req = { kind: 'stopJob', jobId: 'unrelated', gen: 1 }; break;
      case 'old': reqInc = maxInc - 1n; req = { kind: 'stopJob', jobId: JOB, gen: 1_000_000 }; break;
      case 'local': other = { kind: 'localCheckpoint', reqId: 1_000_000 + ++localReq, jobId: m[cmd.j].id, full: cmd.full }; break;
    }
    if (req !== null) reqId += 1;
    const input: ParticipantInput = req !== null ? { kind: 'call', call: { reqId, from, incarnation: reqInc, req } } : other!;
    const callReq = input.kind === 'call' ? input.call.reqId : -1;
    const stale = req !== null && from === 'c' && reqInc < maxInc;
    const wasLive = J.live;
    const ownStateBefore = p.jobState(OWN);
    const jobStateBefore = p.jobState(JOB);
    const jobWritingBefore = J.writing;
    const ownBusyBefore = O.busy;
    const ownFrozenBefore = O.frozen ? O.frozenEpoch : null;
    const ownStepBefore = O.stepEpoch;
    const ownMainBefore = O.localStep;
    const ownStepFullBefore = O.writing?.full ?? O.frozenFull;
    const out: ParticipantStep = p.step(input, now);
    p.checkInvariants();
    if (req !== null && from === 'c' && !stale) maxInc = reqInc;
    eq([], out.persist);

    // Every call is answered at most once.
    for (const r of out.reply) {
      const key = r.to === LOCAL ? r.reqId + 1e9 : r.reqId;
      is(false, answered.has(key), `reqId ${r.reqId} answered twice`);
      answered.add(key);
    }
    const replyTo = (id: number, to = 'c') => out.reply.find((r) => r.reqId === id && r.to === to)?.answer;
    // P3: an older incarnation gets a refusal and nothing else (what falls due with time may share the step).
    if (stale) {
      seen.staleRefusals += 1;
      eq({ kind: 'refused', reason: `fenced: coordinator c incarnation ${reqInc} is older than ${maxInc}`, code: 'failed-precondition' }, replyTo(reqId));
      for (const s of out.send) {
        if (s.to !== 'units' || s.unit.jobId !== JOB) continue;
        // A lease fence (which drops the staging) may share the step.
        if (s.unit.op === 'kill' || s.unit.op === 'dropStaging') expect(now).toBeGreaterThanOrEqual(J.leaseUntil);
        else if (s.unit.op === 'thaw') expect(J.frozen && (now - J.frozenAt >= CONFIG.freezeTimeoutMs || now >= J.leaseUntil)).toBe(true);
        else expect.fail(`P3: a stale call caused ${s.unit.op}`);
      }
    }
    // Lease renewals the model grants (before deciding whether this step had to fence).
    if (input.kind === 'heartbeatAnswer' && wasLive && input.answer.leasedJobs.includes(JOB) && input.sentAtMs + LEASE_MS > J.leaseUntil) {
      J.leaseUntil = input.sentAtMs + LEASE_MS;
      seen.renewals += 1;
    }

    // The units port, per job, in order.
    const expectedSettles: string[] = [];
    const settles: string[] = [];
    const ended = { job: false, own: false };
    let kill: { graceful: boolean } | null = null;
    let periodicFreeze = false;
    const explicitLocal = input.kind === 'localCheckpoint' && input.jobId === OWN ? input : null;
    // A write that ended with this step's input (written / partFailed): the core's, checked below.
    let resolved: { jm: JobModel; w: Write; ok: boolean } | null = null;
    if (input.kind === 'written' || input.kind === 'partFailed') {
      const jm = input.jobId === JOB ? J : O;
      const w = jm.writing;
      if (!w) expect.fail(`a ${input.kind} of a write the core does not wait for`);
      eq([input.epoch, input.reqId], [w!.epoch, w!.reqId]);
      jm.writing = null;
      resolved = { jm, w: w!, ok: input.kind === 'written' };
      ended[jm === J ? 'job' : 'own'] = w!.local;
    }
    for (const s of out.send) {
      if (s.to !== 'units') continue;
      const u: UnitOp = s.unit;
      const jm = u.jobId === JOB ? J : u.jobId === OWN ? O : null;
      if (!jm) expect.fail(`an op for ${u.jobId}`);
      switch (u.op) {
        case 'freeze':
          is(false, jm!.frozen, 'P1: freeze while frozen');
          is(null, jm!.writing, 'P7: freeze while a write runs');
          jm!.frozen = true;
          jm!.frozenAt = now;
          jm!.frozenEpoch = u.epoch;
          jm!.frozenFull = u.full;
          break;
        case 'thaw':
          is(true, jm!.frozen, 'P1: thaw while not frozen');
          jm!.frozen = false;
          if (jm === O) ended.own = true; // unless a write follows
          break;
        case 'snapshot': {
          is(true, u.epoch > jm!.highest, `P2: snapshot ${u.epoch} after ${jm!.highest}`);
          eq([jm!.frozenEpoch, jm!.frozenFull], [u.epoch, u.full], 'the snapshot is of the epoch just frozen');
          jm!.snaps.push(u.epoch);
          if (jm === O) {
            // A local step: epoch highest+1, full iff forced, no parent yet or the chain is fullEvery long.
            is(O.highest + 1n, u.epoch);
            const forced = explicitLocal?.full ?? false;
            const full = forced || O.lastEpoch === null || O.sinceFull + 1 >= FULL_EVERY;
            eq({ full, parentEpoch: full ? null : O.lastEpoch }, { full: u.full, parentEpoch: u.parentEpoch });
            if (!full) seen.localIncremental += 1;
            if (explicitLocal) O.localStep = { reqId: explicitLocal.reqId, to: LOCAL, full, parentEpoch: u.parentEpoch };
            else {
              periodicFreeze = true;
              O.localStep = { reqId: 0, to: '', full, parentEpoch: u.parentEpoch };
            }
          }
          jm!.highest = u.epoch;
          break;
        }
        case 'write': {
          is(null, jm!.writing, 'P7: a second write while one runs');
          is(false, jm!.frozen, 'P7: a write while frozen');
          const w: Write = { epoch: u.epoch, reqId: u.reqId, to: u.to, local: u.local, full: u.full, parentEpoch: u.parentEpoch };
          if (jm === O) {
            ended.own = false; // the step goes on: its part and manifest are written
            if (input.kind !== 'snapshotTaken' || input.jobId !== OWN) expect.fail('a local write follows its snapshot');
            eq({ epoch: input.epoch, ...O.localStep!, local: true }, w);
          } else if (input.kind === 'snapshotTaken' && input.jobId === JOB && input.pages === 0) {
            // A read-only vote: the empty part is recorded before the PREPARE is answered.
            eq({ epoch: input.epoch, reqId: J.lastPrepare?.reqId, to: 'c', local: false, full: false, parentEpoch: null }, w);
            w.vote = true;
          } else {
            if (input.kind !== 'call' || input.call.req.kind !== 'commit') expect.fail('a part is written on COMMIT only, or for a read-only vote');
            eq({ epoch: input.call.req.epoch, reqId, to: 'c', local: false, full: false, parentEpoch: null }, w);
          }
          jm!.writing = w;
          jm!.writes.push(w);
          break;
        }
        case 'settle': settles.push(`${u.jobId}:${u.epoch}:${u.confirmed}`); break;
        case 'kill': if (jm === J) kill = { graceful: u.graceful }; break;
        case 'spawn': jm!.frozen = false; break; // fresh units start thawed
        case 'dropStaging': break;
      }
    }
    for (const jm of [J, O]) {
      if (jm.frozen) {
        expect(now - jm.frozenAt, 'P1: frozen past freezeTimeoutMs').toBeLessThan(CONFIG.freezeTimeoutMs);
        is(false, p.mayRun(jm.id, now));
      }
    }

    // Snapshot results: the frozen epoch's ends its freeze; any other's staging is dropped.
    if (input.kind === 'snapshotTaken' || input.kind === 'snapshotFailed') {
      const jm = input.jobId === JOB ? J : O;
      const mine = out.send.filter((s) => s.to === 'units' && s.unit.jobId === jm.id).map((s) => (s.to === 'units' ? s.unit.op : ''));
      if (input.kind === 'snapshotFailed') seen.snapshotFailures += 1;
      if (input.kind === 'snapshotTaken' && mine[0] === 'dropStaging') expect(out.send).toContainEqual({ to: 'units', unit: { op: 'dropStaging', jobId: jm.id, epoch: input.epoch } });
      if (jm === O && input.kind === 'snapshotFailed' && input.epoch === ownFrozenBefore && O.localStep && O.localStep.to !== '') {
        eq({ kind: 'refused', reason: `epoch ${input.epoch} of job own: snapshot failed: ENOMEM`, code: 'unavailable' }, replyTo(O.localStep.reqId, LOCAL));
      }
    }

    // Write results.
    if (resolved) {
      const { jm, w, ok } = resolved;
      const answer = w.to === '' ? undefined : replyTo(w.reqId, w.to);
      if (!ok) {
        seen.failedWrites += 1;
        expectedSettles.push(`${jm.id}:${w.epoch}:false`);
        if (w.to !== '') eq({ kind: 'refused', reason: `epoch ${w.epoch} of job ${jm.id}: write failed: EIO`, code: 'unavailable' }, answer);
      } else if (w.local) {
        jm.lastEpoch = w.epoch;
        jm.sinceFull = w.full ? 0 : jm.sinceFull + 1;
        seen.localCommitted += 1;
        if (w.to !== '') eq({ kind: 'committed', epoch: w.epoch, full: w.full, chainLength: jm.sinceFull + 1 }, answer);
      } else if (jm.aborted.has(w.epoch)) {
        seen.abortedWrites += 1;
        expectedSettles.push(`${jm.id}:${w.epoch}:false`);
        eq({ kind: 'refused', reason: `epoch ${w.epoch} of job job was aborted while its part was written`, code: 'aborted' }, answer);
      } else {
        const part = { writer: 'n1', epoch: w.epoch, units: ['a', 'b'], pages: jm.stagedPages.get(w.epoch) };
        if (w.vote) eq({ kind: 'prepared', pages: 0, bytes: 0, done: answer?.kind === 'prepared' && answer.done, readOnly: { part } }, answer);
        else {
          eq({ kind: 'durable', part }, answer);
          is(true, jm.prepared.has(w.epoch), `P2: DURABLE for ${w.epoch} without PREPARED`);
          jm.prepared.delete(w.epoch);
        }
        if (jm.writtenPart !== null) expectedSettles.push(`${jm.id}:${jm.writtenPart}:false`);
        jm.writtenPart = w.epoch;
        seen.durable += 1;
      }
    }
    // One DURABLE or COMMITTED per ended write, besides the same answer to the requests that joined it (checked below).
    const stepAnswers = out.reply.filter((r) => (r.answer.kind === 'durable' || r.answer.kind === 'committed') && !(r.to === LOCAL && O.joined.includes(r.reqId)));
    if (input.kind === 'written' || input.kind === 'partFailed') {
      expect(stepAnswers.length).toBeLessThanOrEqual(1);
    } else {
      // Besides a COMMIT's DURABLE again for a part written already (checked below).
      const again = (r: { reqId: number }) => input.kind === 'call' && input.call.req.kind === 'commit' && r.reqId === input.call.reqId;
      eq([], stepAnswers.filter((r) => !again(r)));
    }

    // Calls to JOB: prepare, commit, abort (not stale).
    if (input.kind === 'call' && !stale && input.call.req.jobId === JOB) {
      const r = input.call.req;
      const answer = replyTo(callReq);
      const froze = out.send.some((s) => s.to === 'units' && s.unit.jobId === JOB && s.unit.op === 'snapshot');
      if (r.kind === 'prepare') {
        if (froze) {
          J.lastPrepare = { reqId: callReq, epoch: r.epoch };
          // The written part is settled: confirmed iff this PREPARE builds on it.
          if (J.writtenPart !== null) {
            const confirmed = r.parentEpoch === J.writtenPart;
            expectedSettles.push(`${JOB}:${J.writtenPart}:${confirmed}`);
            if (confirmed) {
              J.lastEpoch = J.writtenPart;
              seen.confirmed += 1;
            } else seen.unconfirmed += 1;
            J.writtenPart = null;
          }
        } else is('refused', answer?.kind);
        if (answer?.kind === 'refused' && answer.reason.includes('already in progress')) seen.busyRefusals += 1;
      }
      if (r.kind === 'commit') {
        const wrote = out.send.some((s) => s.to === 'units' && s.unit.op === 'write');
        const checkpointable = jobStateBefore === 'running' || jobStateBefore === 'completed';
        if (checkpointable && jobWritingBefore === null && J.writtenPart === r.epoch) {
          // Written already (a read-only vote, or a retry): DURABLE again, nothing rewritten.
          eq({ kind: 'durable', part: { writer: 'n1', epoch: r.epoch, units: ['a', 'b'], pages: J.stagedPages.get(r.epoch) } }, answer);
          is(false, wrote);
          seen.durableAgain += 1;
        } else is(wrote ? undefined : 'refused', wrote ? answer : answer?.kind);
      }
      if (r.kind === 'abort') {
        is('ok', answer?.kind);
        J.prepared.delete(r.epoch);
        if (J.writing?.epoch === r.epoch) J.aborted.add(r.epoch);
        if (J.writtenPart === r.epoch) {
          expectedSettles.push(`${JOB}:${r.epoch}:false`);
          J.writtenPart = null;
          seen.unconfirmed += 1;
        }
      }
    }
    // A restart (a start that spawns) settles the old record's written part unconfirmed: it is no epoch of the new one.
    for (const [jm, which] of [[J, 'job'], [O, 'own']] as const) {
      const spawned = cmd.k === 'start' && cmd.j === which && out.send.some((x) => x.to === 'units' && x.unit.op === 'spawn' && x.unit.jobId === jm.id);
      if (spawned && jm.writtenPart !== null) {
        expectedSettles.push(`${jm.id}:${jm.writtenPart}:false`);
        jm.writtenPart = null;
        seen.unconfirmed += 1;
      }
    }
    // Settles: exactly those the model expects, each part once.
    eq(expectedSettles.sort(), settles.sort());
    for (const s of settles) {
      const key = s.replace(/:(true|false)$/, '');
      is(false, settled.has(key), `settled twice: ${key}`);
      settled.add(key);
    }

    // PREPARED answers the last PREPARE (P2).
    for (const r of out.reply) {
      if (r.answer.kind === 'prepared') {
        is(r.reqId, J.lastPrepare?.reqId, 'P2: PREPARED answers the last PREPARE');
        // A read-only vote needs no COMMIT: its part is written (above).
        if (r.answer.readOnly) seen.readOnly += 1;
        else J.prepared.add(J.lastPrepare!.epoch);
        seen.prepared += 1;
      }
      if (r.answer.kind === 'refused' && r.answer.reason.includes('took over')) seen.freezeTimeouts += 1;
    }

    // Local checkpoints of OWN: refused while a step runs; explicit ones of JOB are refused.
    if (input.kind === 'localCheckpoint') {
      const answer = replyTo(input.reqId, LOCAL);
      if (input.jobId === JOB) is('refused', answer?.kind);
      else if (ownStateBefore !== 'running' && ownStateBefore !== 'completed') expect(answer?.kind).toBe('refused');
      else if (ownBusyBefore) {
        if (input.full && !ownStepFullBefore) {
          eq({ kind: 'refused', reason: `incremental epoch ${ownStepBefore} of job own is being checkpointed; ask for a full one once it ends`, code: 'aborted' }, answer);
          seen.busyRefusals += 1;
        } else if (O.joined.length >= 16) {
          is('refused', answer?.kind);
        } else {
          // Joined: answered when the running step ends (checked below; that may be this very step, at a timeout).
          O.joined.push(input.reqId);
          seen.localJoins += 1;
        }
      } else eq(['freeze', 'snapshot'], out.send.filter((s) => s.to === 'units' && s.unit.jobId === OWN).map((s) => (s.to === 'units' ? s.unit.op : '')));
    }

    // Requests that joined OWN's local step: unanswered while it runs; when it ends, each gets the step's own answer.
    if (O.joined.length > 0 && ownStepBefore !== null) {
      const joinedNow = [...O.joined];
      const answers = joinedNow.map((id) => replyTo(id, LOCAL));
      if (O.stepEpoch === ownStepBefore) eq(joinedNow.map(() => undefined), answers, 'a joined request answered while its step runs');
      else {
        is(true, answers.every((a) => a !== undefined), 'a joined request unanswered when its step ended');
        for (const a of answers) eq(answers[0], a);
        if (ownMainBefore && ownMainBefore.to !== '') eq(replyTo(ownMainBefore.reqId, LOCAL), answers[0]);
        if (answers[0]?.kind === 'committed') is(ownStepBefore, answers[0].epoch);
        seen.joinedAnswered += joinedNow.length;
        O.joined = O.joined.filter((id) => !joinedNow.includes(id));
      }
    }

    // Periodic turns of OWN.
    const ownRunning = p.jobState(OWN) === 'running';
    let next = O.nextLocal;
    if (input.kind === 'spawned' && input.jobId === OWN && p.jobState(OWN) === 'running' && ownStateBefore === 'starting') next = now + INTERVAL_MS;
    // A step that ended by its failed snapshot keeps a turn already set; any other end sets the next turn.
    const snapshotFailedOwn = input.kind === 'snapshotFailed' && input.jobId === OWN && input.epoch === ownFrozenBefore;
    if (ended.own && ownRunning && !(snapshotFailedOwn && next !== null)) next = now + INTERVAL_MS;
    if (!ownRunning) next = null;
    if (ownRunning && next !== null && now >= next) {
      // Due: taken unless a step runs (after this step's input).
      const busyAfterInput = (O.frozen && !periodicFreeze) || O.writing !== null;
      is(!busyAfterInput, periodicFreeze, `periodic turn due at ${next}, now ${now}, busy ${busyAfterInput}`);
      if (periodicFreeze) seen.periodic += 1;
      else seen.periodicSkipped += 1;
      next = null;
    } else is(false, periodicFreeze, `a periodic turn before it was due (${next}) at ${now}`);
    O.nextLocal = next;

    // P4 against the model lease of JOB.
    const exited = input.kind === 'unitsExited' && input.jobId === JOB && (p.jobState(JOB) === 'completed' || p.jobState(JOB) === 'failed');
    const killed = kill !== null;
    const caused = (input.kind === 'call' && !stale && input.call.req.jobId === JOB && (cmd.k === 'stop' || cmd.k === 'start'))
      || (input.kind === 'spawned' && input.jobId === JOB && input.corrupt !== null) || exited
      || (input.kind === 'spawned' && input.jobId === JOB && replyTo(input.reqId)?.kind === 'refused'); // a failed spawn: nothing runs
    if (killed && !caused) {
      seen.leaseFences += 1;
      is(false, kill!.graceful, 'a lease fence kills without grace');
      expect(now, 'P4: a kill before the lease ran out, without a cause').toBeGreaterThanOrEqual(J.leaseUntil);
    }
    if (wasLive && !caused && now >= J.leaseUntil) is(true, killed, `P4: live at ${now} past lease ${J.leaseUntil}`);
    if (killed) J.live = false;
    if (input.kind === 'spawned' && input.jobId === JOB && input.failed !== undefined && replyTo(input.reqId)?.kind === 'refused') J.live = false;
    for (const [jm, which] of [[J, 'job'], [O, 'own']] as const) {
      if (cmd.k === 'start' && cmd.j === which && out.send.some((s) => s.to === 'units' && s.unit.op === 'spawn' && s.unit.jobId === jm.id)) {
        jm.startReq = callReq;
        // A restart is a new record: its written part was settled above, its chain restarts.
        jm.writtenPart = null;
        jm.lastEpoch = null;
        jm.sinceFull = 0;
        if (jm === J) {
          J.live = true;
          J.leaseUntil = now + LEASE_MS;
        }
      }
      if (input.kind === 'spawned' && input.jobId === jm.id && input.restored && replyTo(input.reqId, which === 'own' ? LOCAL : 'c')?.kind === 'ok') {
        jm.lastEpoch = input.restored.epoch;
        jm.sinceFull = input.restored.chainLength - 1;
        if (input.restored.highestEpoch > jm.highest) jm.highest = input.restored.highestEpoch;
      }
    }
    if (exited) J.live = false;
    if (!J.live || now >= J.leaseUntil) is(false, p.mayRun(JOB, now));
    is(false, p.mayRun(JOB, J.leaseUntil));
    // summary().lastEpoch follows the confirmations and local commits.
    for (const jm of [J, O]) {
      const s = p.summary(jm.id);
      if (s) {
        is(jm.lastEpoch, s.lastEpoch, `${jm.id}: lastEpoch`);
        is(jm.highest, s.highestEpoch, `${jm.id}: highestEpoch`);
        is(jm.busy, s.busy, `${jm.id}: busy`);
      }
    }
  }
}

/** expect(actual, msg).toBe(expected) / .toEqual(expected), cheap when they hold (the observer runs them at every step). */
function is(expected: unknown, actual: unknown, msg?: string): void {
  if (actual !== expected) expect(actual, msg).toBe(expected);
}
function eq(expected: unknown, actual: unknown, msg?: string): void {
  if (!isDeepStrictEqual(actual, expected)) expect(actual, msg).toEqual(expected);
}

describe('NodeParticipant under random schedules', () => {
  it('keeps P1..P4, P7, writes, settles and local checkpoints against a naive model, and the schedules reach every case the observer checks', () => {
    fc.assert(fc.property(scheduleArb, (s) => run(s)), { numRuns: 500, seed: 20240611 });
    // Not vacuous: rounds went through, parts were written, confirmed, aborted and failed, leases were renewed and lapsed,
    // freezes timed out, stale calls came, local checkpoints committed (incremental ones too), periodic turns ran and were skipped.
    for (const [what, n] of Object.entries(seen)) expect(n, what).toBeGreaterThan(5);
  });
});
