import { RoundCoordinator, type RoundInput, type RoundOutcome, type RoundReply, type RoundStep } from '../../protocol/core/round.js';
import type { ClusterRequest } from '../../protocol/messages.js';
import { KEEP_LINES, type GJob, type GridState } from './supervisor-state.js';
import type { CheckpointAnswer, GridLine, GridStep } from './supervisor-types.js';

// A job's grid rounds in the grid supervisor core (supervisor.ts): each
// round's epoch is recorded in the catalog before its PREPARE leaves (G3),
// its "manifest" is the recovery line written to the catalog, and once every
// share reported completion the next round is the final one (G4).

export function startRound(st: GridState, job: GJob, out: GridStep): void {
  const last = job.lines.at(-1)?.epoch ?? null;
  const epoch = st.mutant('reuse-epoch-number') ? (last ?? 0n) + 1n : job.highestEpoch + 1n;
  if (st.mutant('reuse-epoch-number')) job.round = new RoundCoordinator(job.jobId, st.config.round, epoch - 1n, st.config.mutants);
  job.highestEpoch = epoch > job.highestEpoch ? epoch : job.highestEpoch;
  st.save(out); // G3: the epoch is on disk before its PREPARE leaves
  job.doneAtCut.clear();
  // The requests waiting for a round get this one's outcome.
  job.checkpointRound.push(...job.checkpointNext.splice(0));
  const participants = st.clustersOf(job);
  st.emit({ kind: 'roundStarted', jobId: job.jobId, epoch, parentEpoch: last, full: last === null, participants });
  roundStep(st, job, { kind: 'start', roundId: `${job.jobId}-g${epoch}`, jobId: job.jobId, epoch, parentEpoch: last, participants, full: last === null }, out);
}

export function roundStep(st: GridState, job: GJob, input: RoundInput, out: GridStep): void {
  applyRound(st, job, job.round.step(input, st.nowMs), out);
}

function applyRound(st: GridState, job: GJob, s: RoundStep, out: GridStep): void {
  for (const p of s.persist) {
    const line: GridLine = {
      epoch: p.epoch,
      clusterEpochs: Object.fromEntries(p.parts.map((x) => [x.participant, String(p.epoch)])),
      unitClusters: Object.fromEntries(job.clusters),
    };
    job.pendingLine = line;
    out.persist.push({ kind: 'catalog', jobs: [], reason: 'line', step: st.stepNo, lineOf: { jobId: job.jobId, epoch: p.epoch } }); // rows: step()'s one write
  }
  for (const a of s.send) {
    const req: ClusterRequest = a.kind === 'prepare'
      ? { kind: 'prepare', jobId: a.jobId, epoch: a.epoch, parentEpoch: a.parentEpoch }
      : { kind: a.kind, jobId: a.jobId, epoch: a.epoch };
    st.call(out, a.to, req, job.jobId, 'round', a.epoch);
  }
  if (s.reply) onRoundEnd(st, job, s.reply, out);
}

export function lineWritten(st: GridState, jobId: string, epoch: bigint, error: string | null, out: GridStep): void {
  const job = st.jobs.get(jobId);
  if (!job) return;
  const line = job.pendingLine;
  job.pendingLine = null;
  if (error === null && line?.epoch === epoch && job.round.status().epoch === epoch) job.lines = [...job.lines, line].slice(-KEEP_LINES);
  roundStep(st, job, error === null ? { kind: 'manifestWritten', epoch } : { kind: 'manifestFailed', epoch, reason: error }, out);
}

function onRoundEnd(st: GridState, job: GJob, r: RoundReply, out: GridStep): void {
  if (r.kind === 'prepareDone') return;
  st.emit({ kind: 'roundFinished', jobId: job.jobId, outcome: r });
  // A checkpoint request waiting for the next round gets one at once.
  job.nextRoundAtMs = st.nowMs + (job.checkpointNext.length > 0 ? 0 : job.intervalMs);
  if (r.kind === 'aborted') job.lastError = `grid round ${r.epoch} aborted in ${r.phase}: ${r.reason}`;
  answerCheckpoints(st, job, r, out);
  if (!job.final) return;
  const ended = st.clustersOf(job).every((c) => job.doneAtCut.has(c));
  if (r.kind === 'committed' && !ended) {
    // A share reported done from before a restart of its own: not the end yet (G4).
    job.final = null;
    job.finalMissed = true;
    return;
  }
  if (r.kind === 'committed') {
    job.lastError = `completed; its end state is line ${r.epoch}`;
    st.become(job, 'completed', job.lastError);
    for (const c of st.clustersOf(job)) st.call(out, c, { kind: 'stopJob', jobId: job.jobId }, job.jobId, 'stop', null);
    st.save(out);
    return;
  }
  job.final.attempts += 1;
  job.final.reasons.push(`attempt ${job.final.attempts}: grid round ${r.epoch} aborted in ${r.phase}: ${r.reason}`);
  job.nextRoundAtMs = st.nowMs + st.config.retryMs;
  if (job.final.attempts >= st.config.maxFinalAttempts) {
    job.lastError = `its units finished but the final round did not commit, so its final state is in no epoch (${job.final.reasons.join('; ')})`;
    st.become(job, 'failed', job.lastError);
    refuseCheckpoints(st, job, 'failed-precondition', `job ${job.jobId} failed`, out);
    // The shares end here too (their units have exited), rather than linger until their leases lapse.
    for (const c of st.clustersOf(job)) st.call(out, c, { kind: 'stopJob', jobId: job.jobId }, job.jobId, 'stop', null);
    st.save(out);
  }
}

function answerCheckpoints(st: GridState, job: GJob, r: RoundOutcome, out: GridStep): void {
  const line = job.lines.at(-1);
  for (const reqId of job.checkpointRound.splice(0)) {
    const answer: CheckpointAnswer = r.kind === 'committed' && line?.epoch === r.epoch
      ? { kind: 'committed', outcome: r, line }
      : { kind: 'refused', code: 'aborted', reason: r.kind === 'committed' ? `grid round ${r.epoch} committed without its line` : `grid round ${r.epoch} aborted in ${r.phase}: ${r.reason}` };
    out.reply.push({ to: 'operator', kind: 'checkpointed', reqId, answer });
  }
}

/** The job leaves running (a recovery, its end): the requests waiting for a round get none. */
export function refuseCheckpoints(_st: GridState, job: GJob, code: 'failed-precondition' | 'aborted', reason: string, out: GridStep): void {
  for (const reqId of [...job.checkpointNext.splice(0), ...job.checkpointRound.splice(0)]) {
    out.reply.push({ to: 'operator', kind: 'checkpointed', reqId, answer: { kind: 'refused', code, reason } });
  }
}

/** Every share completed: the next round is the final one (G4). */
export function checkFinal(st: GridState, job: GJob, out: GridStep): void {
  if (job.final) return;
  const done = st.clustersOf(job).every((c) => st.clusters.get(c)?.reported.get(job.jobId) === 'completed');
  if (!done) return;
  if (st.mutant('complete-without-final-epoch')) {
    st.become(job, 'completed', 'every share completed');
    st.save(out);
    return;
  }
  job.final = { attempts: 0, reasons: [] };
  // At once; after a final round that found a share not done after all, only after a pause.
  job.nextRoundAtMs = job.finalMissed ? Math.min(job.nextRoundAtMs, st.nowMs + st.config.retryMs) : st.nowMs;
  job.finalMissed = false;
}
