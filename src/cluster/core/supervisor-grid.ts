import type { RestartPolicy } from '../../protocol/job-spec.js';
import type { ClusterCall, HeartbeatAnswer, MemberJobState } from '../../protocol/messages.js';
import { newerGridFence, staleGridRefusal } from '../../protocol/grid-fence.js';
import { DEFAULT_MAX_CHAIN_EPOCHS } from './retention.js';
import { beginRestart } from './supervisor-restart.js';
import { cancelRound, roundStep, startRound } from './supervisor-rounds.js';
import { isLive, type ClusterState, type Job } from './supervisor-state.js';
import type { ClusterStep } from './supervisor-types.js';

// The grid's side of the cluster supervisor core (supervisor.ts): the grid's
// calls (submit, restore, stop, and its two-level rounds: prepare holds
// after every PREPARED, commit proceeds, abort cancels), this cluster's
// heartbeat to the grid (its grid-managed jobs' shares and its free room),
// the grid's lease on those jobs and their fence when it lapses (C6). Local
// jobs are none of the grid's business: it may not drive them, and they are
// not in its heartbeat.

export function onGridCall(st: ClusterState, call: ClusterCall, out: ClusterStep): void {
  // F1: a deposed grid's call (a leader elected later has been heard from, or this grid restarted since) is refused first.
  const stale = st.mutant('cluster-accepts-stale-leader') ? null : staleGridRefusal(st.grid.fence, call.fence);
  if (stale !== null) {
    st.grid.staleCalls += 1;
    st.emit({ kind: 'staleGridCall', request: call.req.kind, jobId: call.req.jobId, reason: stale });
    return st.answerGrid(out, call.reqId, { kind: 'refused', reason: stale, stale: true });
  }
  st.grid.fence = newerGridFence(st.grid.fence, call.fence);
  const r = call.req;
  const job = st.jobs.get(r.jobId);
  if (job?.local && (isLive(job) || r.kind !== 'submitJob')) {
    return st.answerGrid(out, call.reqId, { kind: 'refused', reason: `job ${r.jobId} is a local job of cluster ${st.config.clusterId} (${job.state}), not the grid's` });
  }
  switch (r.kind) {
    case 'submitJob': return onSubmit(st, call.reqId, r.jobId, r.units, r.gen, r.leaseMs, out, r.restartPolicy);
    case 'restoreJob': {
      if (job?.restart) return st.answerGrid(out, call.reqId, { kind: 'busy', reason: `job ${r.jobId} is restarting here (${job.restart.reason})` });
      const target = job ?? st.newJob(r.jobId, [...r.units].sort(), null, 'restored by the grid', r.restartPolicy ? { restartPolicy: r.restartPolicy } : {});
      target.units = [...r.units].sort();
      target.gridGen = r.gen;
      target.placement = new Map([...target.placement].filter(([u]) => target.units.includes(u)));
      target.rowDirty = true;
      const adopt = r.adopt.filter((a) => a.epoch !== null).map((a) => ({ store: a.fromCluster, epoch: a.epoch as bigint, units: a.units }));
      target.badEpochs.clear();
      // Epochs past the line's (or any, when the line starts the units anew) are no state of the job any more.
      target.committed = r.epoch === null ? [] : target.committed.filter((e) => e <= (r.epoch as bigint));
      st.emit({ kind: 'gridRestored', jobId: r.jobId, epoch: r.epoch });
      cancelRound(st, target, 'the grid restores the job', out);
      target.gridLeaseUntilMs = st.nowMs + gridLease(st, r.leaseMs);
      beginRestart(st, target, 'the grid restores the job', null, out, { epoch: r.epoch, adopt, answer: { to: 'grid', reqId: call.reqId } });
      return;
    }
    case 'stopJob':
      if (job) {
        cancelRound(st, job, 'stopped by the grid', out);
        if (job.restart?.answer) st.answer(out, job.restart.answer, { kind: 'refused', reason: 'stopped' });
        job.restart = null;
        st.recoveryEnded(job, false);
        st.become(job, job.allDoneAtMs !== null ? 'completed' : 'stopped', 'stopped by the grid');
        st.stopEverywhere(job, out);
      }
      return st.answerGrid(out, call.reqId, { kind: 'ok' });
    case 'prepare': return onGridPrepare(st, call.reqId, r.jobId, r.epoch, r.parentEpoch, out);
    case 'commit': {
      const s = job?.round.status();
      if (!job || s?.phase !== 'holding' || s.epoch !== r.epoch) return st.answerGrid(out, call.reqId, { kind: 'refused', reason: `no prepared round for epoch ${r.epoch} of job ${r.jobId}` });
      job.gridCommit = call.reqId;
      return roundStep(st, job, { kind: 'proceed', epoch: r.epoch }, out);
    }
    case 'abort':
      if (job && job.round.status().epoch === r.epoch && job.round.status().phase !== 'idle') roundStep(st, job, { kind: 'cancel', epoch: r.epoch, reason: 'the grid aborted the round' }, out);
      return st.answerGrid(out, call.reqId, { kind: 'ok' });
  }
}

/**
 * The lease a start from the grid holds, from its arrival: the one the call
 * names (the grid waits out that one before it runs the units elsewhere,
 * G1), which is also the length from now on; 0: the last known length.
 */
function gridLease(st: ClusterState, leaseMs: number): number {
  if (leaseMs > 0) st.grid.leaseMs = leaseMs;
  return st.grid.leaseMs;
}

function onSubmit(st: ClusterState, reqId: number, jobId: string, units: string[], gen: number, leaseMs: number, out: ClusterStep, restartPolicy?: RestartPolicy): void {
  const old = st.jobs.get(jobId);
  if (old && isLive(old)) return st.answerGrid(out, reqId, { kind: 'refused', reason: `job ${jobId} is already ${old.state}` });
  if (!old && st.jobs.size >= st.config.maxJobs) return st.answerGrid(out, reqId, { kind: 'refused', reason: `at most ${st.config.maxJobs} jobs` });
  const job = st.newJob(jobId, [...units].sort(), null, 'submitted by the grid', restartPolicy ? { restartPolicy } : {});
  job.gridGen = gen;
  job.rowDirty = true;
  job.gridLeaseUntilMs = st.nowMs + gridLease(st, leaseMs);
  beginRestart(st, job, 'submitted', null, out, { epoch: null, adopt: [], answer: { to: 'grid', reqId } });
}

function onGridPrepare(st: ClusterState, reqId: number, jobId: string, epoch: bigint, parentEpoch: bigint | null, out: ClusterStep): void {
  const job = st.jobs.get(jobId);
  if (!job || job.state !== 'running' || job.restart) return st.answerGrid(out, reqId, { kind: 'refused', reason: `job ${jobId} is ${job?.state ?? 'unknown'} in cluster ${st.config.clusterId}` });
  const s = job.round.status();
  if (s.phase === 'holding' && s.epoch !== null && epoch > s.epoch) roundStep(st, job, { kind: 'cancel', epoch: s.epoch, reason: `superseded by grid epoch ${epoch}` }, out);
  if (job.round.status().phase !== 'idle') return st.answerGrid(out, reqId, { kind: 'refused', reason: `a round of job ${jobId} is already running` });
  if (epoch <= job.round.status().highestEpoch) return st.answerGrid(out, reqId, { kind: 'refused', reason: `stale grid epoch ${epoch}: this cluster is at ${job.round.status().highestEpoch}` });
  if (parentEpoch !== null) st.emit({ kind: 'gridLine', jobId, epoch: parentEpoch });
  // Compaction: the cluster bounds a grid job's chain itself (the grid always names its last line as parent).
  const chainFull = job.roundsSinceFull + 1 >= (st.config.maxChainEpochs ?? DEFAULT_MAX_CHAIN_EPOCHS);
  const full = parentEpoch === null || job.needsFull || !job.committed.includes(parentEpoch) || chainFull;
  job.gridPrepare = reqId;
  startRound(st, job, { epoch, parentEpoch: full ? null : parentEpoch, full, hold: true }, out);
}

export function onGridBeatAnswer(st: ClusterState, sentAtMs: number, a: HeartbeatAnswer): void {
  // A deposed grid's answer renews nothing (F1): the grid elected after it may be waiting out these leases.
  if (a.fence && staleGridRefusal(st.grid.fence, a.fence) !== null && !st.mutant('cluster-accepts-stale-leader')) return;
  if (a.fence) st.grid.fence = newerGridFence(st.grid.fence, a.fence);
  if (!a.known) {
    st.grid.nextBeatMs = st.nowMs;
    return;
  }
  st.grid.leaseMs = a.leaseMs;
  // The grid's detector expects beats at its interval, not at the one this cluster asks of its agents.
  if (a.intervalMs !== undefined && a.intervalMs > 0) st.grid.intervalMs = a.intervalMs;
  for (const id of a.leasedJobs) {
    const j = st.jobs.get(id);
    if (j && !j.local) j.gridLeaseUntilMs = Math.max(j.gridLeaseUntilMs, sentAtMs + a.leaseMs);
  }
}

/** The grid's lease lapsed: the grid may run the job elsewhere soon; stop it here (C6). */
export function fence(st: ClusterState, job: Job, out: ClusterStep): void {
  cancelRound(st, job, 'the grid lease lapsed', out);
  if (job.restart?.answer) st.answer(out, job.restart.answer, { kind: 'refused', reason: 'fenced' });
  job.restart = null;
  job.lastError = `fenced: the grid's lease on job ${job.jobId} lapsed`;
  job.rowDirty = true;
  st.recoveryEnded(job, false);
  st.become(job, 'fenced', job.lastError);
  st.stopEverywhere(job, out);
}

export function beatGrid(st: ClusterState, out: ClusterStep): void {
  st.grid.beatSeq += 1;
  st.grid.nextBeatMs = st.nowMs + (st.grid.intervalMs || st.config.heartbeatIntervalMs);
  const jobs = [...st.jobs.values()].filter((j) => !j.local).map((j) => ({ jobId: j.jobId, state: shareState(j), gen: j.gridGen }));
  const room = st.capacities(null).filter((c) => st.nodes.get(c.nodeId)!.verdict === 'alive');
  const freeUnits = room.reduce((a, c) => a + Math.max(0, c.capacityUnits - c.placedUnits), 0);
  out.send.push({ to: 'grid', heartbeat: { member: st.config.clusterId, incarnation: st.config.incarnation, seq: st.grid.beatSeq, sentAtMs: st.nowMs, jobs, freeUnits } });
}

/**
 * At the end of a step: a grid share whose units all completed shows as
 * completed (status, Watch) while the job runs on here for the grid's final
 * round; one event when it starts to, none when it stops (a restart, the
 * grid's stop: their own jobState events say so). Not the beat's state
 * (shareState), which also waits for no round to run: that is what the grid
 * acts on, this what an operator sees.
 */
export function showShares(st: ClusterState): void {
  let shown: Job[] | null = null;
  for (const j of st.jobs.values()) {
    const done = j.local === null && j.state === 'running' && j.allDoneAtMs !== null;
    if (done === j.shareShownCompleted) continue;
    j.shareShownCompleted = done;
    if (done) (shown ??= []).push(j);
  }
  if (shown === null) return;
  shown.sort((a, b) => (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0));
  for (const j of shown) st.emit({ kind: 'shareCompleted', jobId: j.jobId, reason: 'every unit completed; the grid\'s final round records the end state' });
}

function shareState(j: Job): MemberJobState {
  if (j.state === 'failed' && j.failedByPolicy) return 'unit-failed';
  if (j.state === 'running' && j.allDoneAtMs !== null && j.round.status().phase === 'idle') return 'completed';
  if (j.state === 'starting' || j.state === 'recovering') return 'running';
  return j.state;
}
