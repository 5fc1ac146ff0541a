import { FINAL_ROUND_BACKOFF_MS } from '../../protocol/core/final-round.js';
import type { PreparedInput, RoundInput, RoundOutcome, RoundReply, RoundStep } from '../../protocol/core/round.js';
import type { AgentAnswer, AgentRequest, PartRef } from '../../protocol/messages.js';
import type { ClusterState, Job } from './supervisor-state.js';
import type { ClusterStep } from './supervisor-types.js';

// A job's rounds in the cluster supervisor core (supervisor.ts): each input
// goes to the job's round core, whose persists become manifests, whose sends
// become agent calls, and whose end answers whoever waits on it — the grid
// (prepare answers prepared, commit answers committed, an abort refuses
// both) or, for a local job, a checkpoint request; a local job's round end
// also schedules its next periodic round and judges its final round (C5).
// A node that votes read-only (nothing to write) is sent no COMMIT: its part
// is durable with its PREPARED, and a round whose parts all are goes
// straight to its manifest — for the grid's rounds too, which the cluster
// still answers phase by phase (prepared, then committed on its commit).

export function roundStep(st: ClusterState, job: Job, input: RoundInput, out: ClusterStep): void {
  applyRound(st, job, job.round.step(input, st.nowMs), out);
}

/** Starts a round over the job's nodes (its epoch chosen by the caller, C3). */
export function startRound(st: ClusterState, job: Job, r: { epoch: bigint; parentEpoch: bigint | null; full: boolean; hold: boolean }, out: ClusterStep): void {
  const participants = st.nodesOf(job);
  job.doneAtCut.clear();
  st.emit({ kind: 'roundStarted', jobId: job.jobId, epoch: r.epoch, parentEpoch: r.parentEpoch, full: r.full, participants });
  roundStep(st, job, {
    kind: 'start', roundId: `${job.jobId}-${r.epoch}`, jobId: job.jobId, epoch: r.epoch, parentEpoch: r.parentEpoch,
    participants, full: r.full, holdAfterPrepare: r.hold,
  }, out);
}

/**
 * A node's PREPARED as its round's input. A read-only vote carries its durable (empty) part: the round core
 * records it at once and sends that node no COMMIT.
 */
export function preparedInput(st: ClusterState, participant: string, epoch: bigint, a: Extract<AgentAnswer, { kind: 'prepared' }>): PreparedInput {
  let readOnly = a.readOnly;
  // The broken variant: every PREPARED taken for a read-only vote, so no node is ever told to write its part.
  if (readOnly === undefined && st.mutant('coordinator-skips-commit')) readOnly = { part: { writer: participant, epoch, units: [], pages: a.pages } };
  const input: PreparedInput = { kind: 'prepared', participant, epoch, pages: a.pages, bytes: a.bytes, digest: a.digest ?? '' };
  return readOnly === undefined ? input : { ...input, readOnly: { part: readOnly.part, digest: readOnly.digest ?? '' } };
}

export function cancelRound(st: ClusterState, job: Job, reason: string, out: ClusterStep): void {
  const s = job.round.status();
  if (s.phase !== 'idle' && s.epoch !== null) roundStep(st, job, { kind: 'cancel', epoch: s.epoch, reason }, out);
}

function applyRound(st: ClusterState, job: Job, s: RoundStep, out: ClusterStep): void {
  for (const p of s.persist) {
    out.persist.push({
      kind: 'manifest', jobId: p.jobId, epoch: p.epoch, parentEpoch: p.parentEpoch, full: p.full,
      parts: p.parts.map((x) => x.part as PartRef), placement: Object.fromEntries(job.placement),
    });
  }
  for (const a of s.send) {
    const req: AgentRequest = a.kind === 'prepare'
      ? { kind: 'prepare', jobId: a.jobId, epoch: a.epoch, parentEpoch: a.parentEpoch, full: a.full, lastCommitted: job.committed.at(-1) ?? null }
      : { kind: a.kind, jobId: a.jobId, epoch: a.epoch };
    st.callAgent(out, a.to, req, job.jobId, 'round', a.epoch);
  }
  if (s.reply) onRoundReply(st, job, s.reply, out);
}

function onRoundReply(st: ClusterState, job: Job, r: RoundReply, out: ClusterStep): void {
  if (r.kind === 'prepareDone') {
    if (job.gridPrepare !== null) st.answerGrid(out, job.gridPrepare, { kind: 'prepared', pages: r.pages, bytes: r.bytes, done: st.nodesOf(job).every((n) => job.doneAtCut.has(n)) });
    job.gridPrepare = null;
    return;
  }
  st.emit({ kind: 'roundFinished', jobId: job.jobId, outcome: r });
  if (r.kind === 'committed') {
    job.committed = [...job.committed, r.epoch].slice(-st.config.keepEpochs);
    job.roundsSinceFull = r.full ? 0 : job.roundsSinceFull + 1;
    if (r.full) job.adopted = []; // this store holds every unit now
    if (r.full && job.needsFull) {
      job.needsFull = false;
      job.rowDirty = true;
    }
    // Every node had exited at the cut: this epoch holds the job's end state (C5).
    if (st.nodesOf(job).every((n) => job.doneAtCut.has(n))) job.doneEpoch = r.epoch;
    if (job.gridCommit !== null) st.answerGrid(out, job.gridCommit, { kind: 'committed', epoch: r.epoch });
  } else {
    job.lastError = `round ${r.epoch} aborted in ${r.phase}: ${r.reason}`;
    job.rowDirty = true;
    for (const id of [job.gridPrepare, job.gridCommit]) if (id !== null) st.answerGrid(out, id, { kind: 'refused', reason: job.lastError });
  }
  job.gridPrepare = null;
  job.gridCommit = null;
  if (job.local) localRoundEnded(st, job, r, out);
}

/** A local job's round ended: answer its checkpoint request, schedule the next round, judge the final one (C5). */
function localRoundEnded(st: ClusterState, job: Job, r: RoundOutcome, out: ClusterStep): void {
  for (const reqId of job.checkpointReqs.splice(0)) {
    st.answerLocal(out, reqId, r.kind === 'committed'
      ? { kind: 'committed', epoch: r.epoch, parentEpoch: r.parentEpoch, full: r.full, pages: r.pages, bytes: r.bytes, timings: r.timings }
      : { kind: 'refused', reason: `round ${r.epoch} aborted in ${r.phase}: ${r.reason}`, code: 'aborted' });
  }
  if (job.local!.intervalMs > 0) job.nextRoundAtMs = st.nowMs + job.local!.intervalMs;
  const f = job.final;
  if (!f || job.state !== 'running') return;
  if (r.kind === 'committed' && job.doneEpoch === r.epoch) {
    job.final = null;
    job.nextRoundAtMs = null;
    st.become(job, 'completed', `completed: its end state is epoch ${r.epoch}`);
    return;
  }
  if (f.epoch !== r.epoch) return; // a round started before the end was noted: not an attempt
  f.epoch = null;
  f.failures += 1;
  f.reasons.push(`attempt ${f.failures}: ${r.kind === 'committed' ? `round ${r.epoch} committed, but not every node had ended at its cut` : `round ${r.epoch} aborted in ${r.phase}: ${r.reason}`}`);
  if (f.failures < st.config.maxFinalAttempts) {
    f.atMs = st.nowMs + f.failures * FINAL_ROUND_BACKOFF_MS;
    return;
  }
  const reason = `its units finished but the final round did not commit, so its final state is in no epoch (${f.reasons.join('; ')})`;
  job.final = null;
  job.nextRoundAtMs = null;
  job.lastError = reason;
  job.rowDirty = true;
  st.become(job, 'failed', reason);
}
