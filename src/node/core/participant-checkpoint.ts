import type { AgentAnswer, AgentCall, PartRef } from '../../protocol/messages.js';
import { quoteValue } from '../../common/names.js';
import type { ParticipantConfig, ParticipantInput, ParticipantStep } from './participant-types.js';
import { MAX_LOCAL_WAITERS, refused, reply, replyStep, type AgentJob, type LocalStep, type ReadOnlyVote } from './participant-state.js';

// A job's checkpoint steps in the node participant core (participant.ts,
// which states the invariants P1..P7): a round's PREPARE, COMMIT and ABORT,
// the agent's own local checkpoints, and the machine they share: freeze and
// snapshot into staging, thaw (P1), then write the staged part; a written
// part of a round waits for the next PREPARE (or an ABORT) to say whether it
// was committed. Epochs only grow (P2); one step of a job at a time (P7).
// A round's snapshot with no page is a read-only vote: its empty part is
// recorded by the same write op (which writes nothing: store/epoch-writer.ts
// invariant 5) before its PREPARE is answered, and that answer carries the
// part, so its coordinator needs no COMMIT round trip; the job is then
// `written`, exactly as after a COMMIT (a COMMIT that comes anyway is
// answered DURABLE again).
// These functions never add or drop a job: the core owns its map.

/** What a checkpoint step reads of its core: the config, the jobs, and the step's time. */
export interface CheckpointCtx {
  readonly config: ParticipantConfig;
  readonly jobs: ReadonlyMap<string, AgentJob>;
  readonly nowMs: number;
}

type Req<K extends AgentCall['req']['kind']> = Extract<AgentCall['req'], { kind: K }>;

// ---- a coordinator's round -------------------------------------------------------

export function onPrepare(cx: CheckpointCtx, call: AgentCall, r: Req<'prepare'>, job: AgentJob | undefined, out: ParticipantStep): void {
  const why = notCheckpointable(cx, r.jobId, job);
  if (why) return reply(out, call.from, call.reqId, why);
  const j = job!;
  if (r.epoch <= j.highestEpoch) {
    return reply(out, call.from, call.reqId, refused(`stale prepare: epoch ${r.epoch} of job ${r.jobId} is not above epoch ${j.highestEpoch}`, 'aborted'));
  }
  if (!r.full && r.parentEpoch === null) return reply(out, call.from, call.reqId, refused('an incremental epoch needs a parent epoch', 'invalid-argument'));
  if (j.writing || j.freezing?.local) return reply(out, call.from, call.reqId, busy(j));
  // A newer PREPARE supersedes one still freezing: its coordinator gave up on that round.
  if (j.freezing) endFreeze(cx, j, `superseded by epoch ${r.epoch}`, out);
  if (j.staged) dropStaged(j, out);
  settleWritten(j, r.parentEpoch, r.lastCommitted ?? null, out);
  j.highestEpoch = r.epoch;
  freeze(cx, j, r.epoch, call.reqId, call.from, null, r.full, r.parentEpoch, out);
}

export function onCommit(cx: CheckpointCtx, call: AgentCall, r: Req<'commit'>, job: AgentJob | undefined, out: ParticipantStep): void {
  const why = notCheckpointable(cx, r.jobId, job);
  if (why) return reply(out, call.from, call.reqId, why);
  if (job!.writing) return reply(out, call.from, call.reqId, busy(job!));
  // Already written (a read-only vote, or a COMMIT whose answer was lost): DURABLE again, nothing rewritten.
  if (job!.written?.epoch === r.epoch) return reply(out, call.from, call.reqId, { kind: 'durable', part: partRef(cx, job!, r.epoch, job!.written.pages) });
  if (job!.staged?.epoch !== r.epoch) {
    const held = job!.staged ? ` (epoch ${job!.staged.epoch} is)` : '';
    return reply(out, call.from, call.reqId, refused(`nothing prepared for epoch ${r.epoch} of job ${r.jobId}${held}`, 'failed-precondition'));
  }
  write(cx, job!, r.epoch, call.reqId, call.from, null, out);
}

export function onAbort(cx: CheckpointCtx, call: AgentCall, r: Req<'abort'>, job: AgentJob | undefined, out: ParticipantStep): void {
  let dropped = false;
  if (job && job.freezing?.epoch === r.epoch) {
    dropped = true;
    if (!(cx.config.mutants?.has('skip-thaw-on-abort') ?? false)) endFreeze(cx, job, 'aborted by its coordinator', out);
    else job.freezing = null;
  }
  if (job && job.staged?.epoch === r.epoch) {
    dropped = true;
    dropStaged(job, out);
  }
  if (job && job.written?.epoch === r.epoch) {
    dropped = true;
    job.written = null;
    out.send.push({ to: 'units', unit: { op: 'settle', jobId: job.jobId, epoch: r.epoch, confirmed: false } });
  }
  if (job && job.writing?.epoch === r.epoch && !job.writing.local) {
    dropped = true;
    job.writing.aborted = true; // its pages count as changed again once the write ends
  }
  return reply(out, call.from, call.reqId, { kind: 'ok', dropped });
}

// ---- the agent's own checkpoints ---------------------------------------------------

/** A local checkpoint, asked by the agent's API (to: LOCAL) or its periodic timer (to: '', nobody waits). */
export function onLocal(cx: CheckpointCtx, jobId: string, forceFull: boolean, reqId: number, to: string, out: ParticipantStep): void {
  const job = cx.jobs.get(jobId);
  const why = notCheckpointable(cx, jobId, job);
  if (why) return reply(out, to, reqId, why);
  const j = job!;
  if (j.leaseBound) return reply(out, to, reqId, refused(`job ${jobId} is run by a coordinator: its checkpoints are the coordinator's rounds`, 'failed-precondition'));
  // A manual checkpoint while a local one runs (periodic or manual) joins it: it is answered with that
  // checkpoint's outcome, as its own caller is (issue 8: it was refused ABORTED "already in progress"). A
  // full one cannot join an incremental one, whose epoch is not what it asked for: it is refused, saying so.
  const running = j.freezing?.local ?? j.writing?.local ?? null;
  if (running && to !== '') {
    const epoch = j.freezing?.epoch ?? j.writing!.epoch;
    if (forceFull && !running.full) return reply(out, to, reqId, refused(`incremental epoch ${epoch} of job ${jobId} is being checkpointed; ask for a full one once it ends`, 'aborted'));
    if (running.joined.length >= MAX_LOCAL_WAITERS) return reply(out, to, reqId, refused(`at most ${MAX_LOCAL_WAITERS} checkpoint requests of job ${jobId} wait`, 'resource-exhausted'));
    running.joined.push({ reqId, to });
    return;
  }
  // A round's staged snapshot waits for its COMMIT: one staging per job (P7).
  if (j.freezing || j.writing || j.staged) return reply(out, to, reqId, busy(j));
  const full = forceFull || j.lastEpoch === null || j.epochsSinceFull + 1 >= j.fullEvery;
  const parentEpoch = full ? null : j.lastEpoch;
  const epoch = j.highestEpoch + 1n;
  j.highestEpoch = epoch;
  freeze(cx, j, epoch, reqId, to, { full, parentEpoch, joined: [] }, full, parentEpoch, out);
}

// ---- freeze, snapshot, write, settle ------------------------------------------------

function freeze(cx: CheckpointCtx, j: AgentJob, epoch: bigint, reqId: number, to: string, local: LocalStep | null, full: boolean, parentEpoch: bigint | null, out: ParticipantStep): void {
  j.freezing = { epoch, reqId, to, sinceMs: cx.nowMs, done: j.state === 'completed', local };
  out.send.push({ to: 'units', unit: { op: 'freeze', jobId: j.jobId, epoch, full } });
  out.send.push({ to: 'units', unit: { op: 'snapshot', jobId: j.jobId, epoch, full, parentEpoch } });
}

export function onSnapshot(cx: CheckpointCtx, input: Extract<ParticipantInput, { kind: 'snapshotTaken' }>, out: ParticipantStep): void {
  const job = cx.jobs.get(input.jobId);
  const f = job?.freezing;
  if (!job || !f || f.epoch !== input.epoch) {
    // Aborted or timed out meanwhile: already thawed; what it staged is not wanted.
    out.send.push({ to: 'units', unit: { op: 'dropStaging', jobId: input.jobId, epoch: input.epoch } });
    return;
  }
  thaw(job, out);
  job.staged = { epoch: input.epoch, pages: input.pages };
  if (f.local) return write(cx, job, f.epoch, f.reqId, f.to, f.local, out);
  // Nothing to write: vote read-only (PREPARED is answered once the empty part is recorded, by onWritten).
  if (input.pages === 0) return write(cx, job, f.epoch, f.reqId, f.to, null, out, { bytes: input.bytes, done: f.done });
  if (cx.config.mutants?.has('readonly-vote-with-pages') ?? false) return voteWithoutWrite(cx, job, f, input.bytes, out);
  reply(out, f.to, f.reqId, { kind: 'prepared', pages: input.pages, bytes: input.bytes, done: f.done });
}

/** The mutant's broken vote: read-only although pages were staged, so they are never written (nor marked changed again). */
function voteWithoutWrite(cx: CheckpointCtx, job: AgentJob, f: NonNullable<AgentJob['freezing']>, bytes: number, out: ParticipantStep): void {
  const pages = job.staged!.pages;
  job.staged = null;
  if (job.written !== null) out.send.push({ to: 'units', unit: { op: 'settle', jobId: job.jobId, epoch: job.written.epoch, confirmed: false } });
  job.written = { epoch: f.epoch, pages: 0 };
  reply(out, f.to, f.reqId, { kind: 'prepared', pages, bytes, done: f.done, readOnly: { part: partRef(cx, job, f.epoch, 0) } });
}

export function onSnapshotFailed(cx: CheckpointCtx, input: Extract<ParticipantInput, { kind: 'snapshotFailed' }>, out: ParticipantStep): void {
  const job = cx.jobs.get(input.jobId);
  if (!job || job.freezing?.epoch !== input.epoch) return;
  job.failed += 1;
  job.lastError = `${input.stage}: ${input.reason}`;
  const f = job.freezing;
  thaw(job, out);
  if (f.local && job.nextLocalMs === null && job.intervalMs > 0 && job.state === 'running') job.nextLocalMs = cx.nowMs + job.intervalMs;
  replyStep(out, f.to, f.reqId, f.local, refused(`epoch ${input.epoch} of job ${job.jobId}: ${input.stage} failed: ${input.reason}`, 'unavailable'));
}

function write(cx: CheckpointCtx, j: AgentJob, epoch: bigint, reqId: number, to: string, local: LocalStep | null, out: ParticipantStep, vote: ReadOnlyVote | null = null): void {
  const pages = j.staged?.pages ?? 0;
  j.staged = null;
  j.writing = { epoch, pages, reqId, to, local, aborted: false, vote };
  out.send.push({
    to: 'units',
    unit: {
      op: 'write', jobId: j.jobId, epoch, writer: cx.config.nodeId, units: [...j.units], local: local !== null,
      parentEpoch: local?.parentEpoch ?? null, full: local?.full ?? false, reqId, to,
    },
  });
}

export function onWritten(cx: CheckpointCtx, input: Extract<ParticipantInput, { kind: 'written' }>, out: ParticipantStep): void {
  const job = cx.jobs.get(input.jobId);
  const w = job?.writing;
  if (!job || !w || w.epoch !== input.epoch || w.reqId !== input.reqId) return;
  job.writing = null;
  if (w.local) {
    job.lastEpoch = w.epoch;
    job.epochsSinceFull = w.local.full ? 0 : job.epochsSinceFull + 1;
    job.committed += 1;
    if (job.intervalMs > 0 && job.state === 'running') job.nextLocalMs = cx.nowMs + job.intervalMs;
    return replyStep(out, w.to, w.reqId, w.local, { kind: 'committed', epoch: w.epoch, full: w.local.full, chainLength: job.epochsSinceFull + 1 });
  }
  if (w.aborted) {
    out.send.push({ to: 'units', unit: { op: 'settle', jobId: job.jobId, epoch: w.epoch, confirmed: false } });
    return reply(out, w.to, w.reqId, refused(`epoch ${w.epoch} of job ${job.jobId} was aborted while its part was written`, 'aborted'));
  }
  if (job.written !== null) out.send.push({ to: 'units', unit: { op: 'settle', jobId: job.jobId, epoch: job.written.epoch, confirmed: false } });
  job.written = { epoch: w.epoch, pages: w.pages };
  const part = partRef(cx, job, w.epoch, w.pages);
  // A read-only vote: the written state is reached with PREPARED, which carries what DURABLE would.
  if (w.vote) return reply(out, w.to, w.reqId, { kind: 'prepared', pages: w.pages, bytes: w.vote.bytes, done: w.vote.done, readOnly: { part } });
  reply(out, w.to, w.reqId, { kind: 'durable', part });
}

function partRef(cx: CheckpointCtx, job: AgentJob, epoch: bigint, pages: number): PartRef {
  return { writer: cx.config.nodeId, epoch, units: [...job.units], pages };
}

export function onWriteFailed(cx: CheckpointCtx, input: Extract<ParticipantInput, { kind: 'partFailed' }>, out: ParticipantStep): void {
  const job = cx.jobs.get(input.jobId);
  const w = job?.writing;
  if (!job || !w || w.epoch !== input.epoch || w.reqId !== input.reqId) return;
  job.writing = null;
  job.failed += 1;
  job.lastError = `write: ${input.reason}`;
  out.send.push({ to: 'units', unit: { op: 'settle', jobId: job.jobId, epoch: w.epoch, confirmed: false } });
  if (w.local && job.intervalMs > 0 && job.state === 'running') job.nextLocalMs = cx.nowMs + job.intervalMs;
  replyStep(out, w.to, w.reqId, w.local, refused(`epoch ${w.epoch} of job ${job.jobId}: write failed: ${input.reason}`, 'unavailable'));
}

/**
 * A PREPARE names the epoch it builds on and the newest the coordinator committed: a written part of either was
 * committed; any other was not. (Before lastCommitted, a part whose next round was full was never counted.)
 */
function settleWritten(j: AgentJob, parentEpoch: bigint | null, lastCommitted: bigint | null, out: ParticipantStep): void {
  if (j.written === null) return;
  const { epoch } = j.written;
  const confirmed = epoch === parentEpoch || epoch === lastCommitted;
  out.send.push({ to: 'units', unit: { op: 'settle', jobId: j.jobId, epoch, confirmed } });
  if (confirmed) {
    j.lastEpoch = epoch;
    j.committed += 1;
  }
  j.written = null;
}

// ---- ending a step early (also used by the core's stop, fence, restart and exit) -----

/** Thaws a freeze that will not finish, and answers the step that asked for it (P1). */
export function endFreeze(cx: CheckpointCtx, job: AgentJob, why: string, out: ParticipantStep): void {
  const f = job.freezing!;
  thaw(job, out);
  if (f.local && job.intervalMs > 0 && job.state === 'running') job.nextLocalMs = cx.nowMs + job.intervalMs;
  replyStep(out, f.to, f.reqId, f.local, refused(`epoch ${f.epoch} not ${f.local ? 'checkpointed' : 'prepared'}: ${why}`, 'aborted'));
}

export function dropStaged(job: AgentJob, out: ParticipantStep): void {
  out.send.push({ to: 'units', unit: { op: 'dropStaging', jobId: job.jobId, epoch: job.staged!.epoch } });
  job.staged = null;
}

function thaw(job: AgentJob, out: ParticipantStep): void {
  job.freezing = null;
  out.send.push({ to: 'units', unit: { op: 'thaw', jobId: job.jobId } });
}

function notCheckpointable(cx: CheckpointCtx, jobId: string, job: AgentJob | undefined): AgentAnswer | null {
  if (!job) return refused(`unknown job ${quoteValue(jobId)} on node ${cx.config.nodeId}`, 'not-found');
  // A completed job still takes part: the last round records its end state.
  if (job.state === 'running' || job.state === 'completed') return null;
  return refused(`job ${jobId} is ${job.state} on ${cx.config.nodeId}; it takes part in no round`, 'failed-precondition');
}

function busy(j: AgentJob): AgentAnswer {
  return refused(`a checkpoint step of job ${j.jobId} is already in progress`, 'aborted');
}
