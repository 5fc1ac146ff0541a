import { GridError } from '../../common/errors.js';
import { checkName } from '../../common/names.js';
import { nextEpoch } from '../../protocol/core/round.js';

/** Epochs a local job reserves in its row at a time (see Job.epochCeiling). */
export const EPOCH_RESERVE = 64n;
/** Checkpoint requests of one job that wait for its running round, at most (bounded like every queue). */
export const MAX_CHECKPOINT_WAITERS = 16;
import { placeUnits } from './placement.js';
import { onControl } from './supervisor-control.js';
import { beginRestart } from './supervisor-restart.js';
import { startRound } from './supervisor-rounds.js';
import { isLive, type ClusterState, type Job } from './supervisor-state.js';
import type { ClusterStep, LocalRequest } from './supervisor-types.js';

// Local (standalone) jobs in the cluster supervisor core (supervisor.ts):
// jobs a local client (the CLI) submits to this cluster alone, with no grid
// and so no grid lease (C6 is not theirs). A submit places the units over
// the alive nodes and starts them through the restart machine; the core runs
// the job's periodic rounds (every intervalMs after the last one ended, when
// running and idle) and a client's checkpoint at once; it is the only
// chooser of their epochs (C3: above the round core's highest and the newest
// committed; the job's row, saved before the PREPAREs leave, keeps the
// highest for a restarted coordinator). Every fullEvery-th epoch is full, and any after a restart.
// Once every node reported the job completed, a final round must commit
// with every node done at its cut before the job is completed (C5); it is
// retried on abort, with a growing pause, up to maxFinalAttempts, and the
// job then fails, saying that its final state is in no epoch.

export function onLocalCall(st: ClusterState, reqId: number, req: LocalRequest, out: ClusterStep): void {
  switch (req.kind) {
    case 'submitJob': return submit(st, reqId, req, out);
    case 'checkpoint': return checkpoint(st, reqId, req.jobId, out);
    case 'control': return onControl(st, reqId, req.jobId, req.action, req.epoch, out);
  }
}

function submit(st: ClusterState, reqId: number, req: Extract<LocalRequest, { kind: 'submitJob' }>, out: ClusterStep): void {
  const refuse = (reason: string, code: 'invalid-argument' | 'already-exists' | 'resource-exhausted'): void => st.answerLocal(out, reqId, { kind: 'refused', reason, code });
  const units = Array.isArray(req.units) ? [...req.units].sort() : [];
  try {
    checkName('job', req.jobId);
    for (const u of units) checkName('unit', u);
  } catch (err) {
    return refuse(err instanceof Error ? err.message : String(err), 'invalid-argument');
  }
  if (units.length === 0) return refuse(`job ${req.jobId} has no units`, 'invalid-argument');
  if (new Set(units).size !== units.length) return refuse(`job ${req.jobId} names a unit twice`, 'invalid-argument');
  if (!Number.isSafeInteger(req.intervalMs) || req.intervalMs < 0) return refuse(`bad checkpoint interval ${String(req.intervalMs)} ms: expected an integer >= 0`, 'invalid-argument');
  if (!Number.isSafeInteger(req.fullEvery) || req.fullEvery < 1) return refuse(`bad fullEvery ${String(req.fullEvery)}: expected an integer >= 1`, 'invalid-argument');
  const old = st.jobs.get(req.jobId);
  if (old && isLive(old)) return refuse(`job ${req.jobId} is already ${old.state} in cluster ${st.config.clusterId}`, 'already-exists');
  if (!old && st.jobs.size >= st.config.maxJobs) return refuse(`cluster ${st.config.clusterId} already holds ${st.jobs.size} jobs (limit ${st.config.maxJobs})`, 'resource-exhausted');
  // The restart machine places them the same way in this step (restart-plan.ts over the alive nodes' room); here, the refusal.
  try {
    placeUnits(units, st.capacities(null).filter((c) => st.nodes.get(c.nodeId)?.verdict === 'alive'));
  } catch (err) {
    if (err instanceof GridError) return refuse(err.message, 'resource-exhausted');
    throw err;
  }
  const job = st.newJob(req.jobId, units, { intervalMs: req.intervalMs, fullEvery: req.fullEvery }, 'submitted by a local client', req.restartPolicy ? { restartPolicy: req.restartPolicy } : {});
  beginRestart(st, job, 'submitted', null, out, { epoch: null, adopt: [], answer: { to: 'local', reqId } });
}

function checkpoint(st: ClusterState, reqId: number, jobId: string, out: ClusterStep): void {
  const refuse = (reason: string, code: 'not-found' | 'failed-precondition' | 'aborted' | 'unavailable'): void => st.answerLocal(out, reqId, { kind: 'refused', reason, code });
  const job = st.jobs.get(jobId);
  if (!job) return refuse(`unknown job ${JSON.stringify(jobId)} in cluster ${st.config.clusterId}`, 'not-found');
  if (!job.local) return refuse(`job ${jobId} is grid-managed: its rounds are the grid's`, 'failed-precondition');
  if (job.state !== 'running' || job.restart) return refuse(`job ${jobId} is ${job.state} in cluster ${st.config.clusterId}`, 'failed-precondition');
  if (job.final) return refuse(`the final round of job ${jobId} is under way`, 'aborted');
  if (job.checkpointReqs.length >= MAX_CHECKPOINT_WAITERS) return refuse(`at most ${MAX_CHECKPOINT_WAITERS} checkpoint requests of job ${jobId} wait`, 'aborted');
  // A request while a round runs (periodic or asked) joins it: answered with that round's outcome (issue 8: it was
  // refused ABORTED "already running"). The agent does the same for its own checkpoints (docs/node-agent.md).
  if (job.round.status().phase !== 'idle') {
    job.checkpointReqs.push(reqId);
    return;
  }
  if (job.rowRetryAtMs !== null) return refuse(`the job table write of job ${jobId} failed; its rounds wait for the next one`, 'unavailable');
  job.checkpointReqs.push(reqId);
  startLocalRound(st, job, out);
}

/** When the job's next round is due (periodic, or its final round's next attempt); null if none can start now. */
export function localDeadline(job: Job): number | null {
  // A round's epoch is saved with the job's row before its PREPARE leaves (C3): none starts while a row write must be retried.
  if (!job.local || job.state !== 'running' || job.restart || job.rowRetryAtMs !== null || job.round.status().phase !== 'idle') return null;
  if (job.final) return job.final.epoch === null ? job.final.atMs : null;
  return job.nextRoundAtMs;
}

export function localTime(st: ClusterState, job: Job, out: ClusterStep): void {
  const at = localDeadline(job);
  if (at !== null && st.nowMs >= at) startLocalRound(st, job, out);
}

/** The epoch chooser of local jobs (C3): above every epoch the round core used and every one committed. */
function startLocalRound(st: ClusterState, job: Job, out: ClusterStep): void {
  const last = job.committed.at(-1) ?? null;
  const highest = job.round.status().highestEpoch;
  const epoch = nextEpoch(last !== null && last > highest ? last : highest);
  const full = job.needsFull || last === null || job.roundsSinceFull + 1 >= job.local!.fullEvery;
  // Past the reserved epochs: reserve the next block (the row is written before this round's PREPAREs leave: C3).
  if (epoch > job.epochCeiling) {
    job.epochCeiling = epoch + EPOCH_RESERVE - 1n;
    job.rowDirty = true;
  }
  job.nextRoundAtMs = null;
  if (job.final) job.final.epoch = epoch;
  startRound(st, job, { epoch, parentEpoch: full ? null : last, full, hold: false }, out);
}
