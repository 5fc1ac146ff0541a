import type { RoundInput, RoundReply, RoundStep } from '../../protocol/core/round.js';
import type { AgentRequest, PartRef } from '../../protocol/messages.js';
import type { ClusterState, Job } from './supervisor-state.js';
import type { ClusterStep } from './supervisor-types.js';

// A job's rounds in the cluster supervisor core (supervisor.ts): each input
// goes to the job's round core, whose persists become manifests, whose sends
// become agent calls, and whose end answers the grid calls waiting on it
// (prepare answers prepared, commit answers committed, an abort refuses both).

export function roundStep(st: ClusterState, job: Job, input: RoundInput, out: ClusterStep): void {
  applyRound(st, job, job.round.step(input, st.nowMs), out);
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
      ? { kind: 'prepare', jobId: a.jobId, epoch: a.epoch, parentEpoch: a.parentEpoch, full: a.full }
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
  if (r.kind === 'committed') {
    job.committed = [...job.committed, r.epoch].slice(-st.config.keepEpochs);
    if (r.full) job.needsFull = false;
    if (job.gridCommit !== null) st.answerGrid(out, job.gridCommit, { kind: 'committed', epoch: r.epoch });
  } else {
    job.lastError = `round ${r.epoch} aborted in ${r.phase}: ${r.reason}`;
    for (const id of [job.gridPrepare, job.gridCommit]) if (id !== null) st.answerGrid(out, id, { kind: 'refused', reason: job.lastError });
  }
  job.gridPrepare = null;
  job.gridCommit = null;
}
