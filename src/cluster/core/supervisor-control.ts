import { beginRestart } from './supervisor-restart.js';
import { cancelRound } from './supervisor-rounds.js';
import { isLive, type ClusterState, type Job } from './supervisor-state.js';
import type { JobAction } from '../../protocol/messages.js';
import type { ClusterStep } from './supervisor-types.js';

// Job control of the jobs a cluster runs on its own (`gridckpt job
// cancel|delete|restore --cluster`), in the cluster supervisor core
// (supervisor.ts). A grid-managed share is the grid's to control: refused.
//   cancel   the job becomes `stopped` (saved before the stops leave: a
//            restarted coordinator does not resume it), its round is
//            aborted, its restart or resume given up, and each node is told
//            to stop its units. Answered once every node answered: `unconfirmed`
//            names the nodes that did not (their units stop when the lease
//            this cluster no longer renews lapses).
//   delete   cancel if live, then forget the job: its row goes, its epochs
//            stay in the store, and the highest epoch it used is kept (C3:
//            a job submitted again under its id numbers above it, here and
//            after a restart of this coordinator), and where its units ran
//            (C1: such a job starts there, or waits out their leases — a node
//            that missed the stop may still run them).
//   restore  a restart from a committed epoch (the newest — from the
//            beginning if there is none — or the one named: refused before
//            anything is stopped when it is not committed); the answer names
//            the epoch the units run from (a damaged one is walked back
//            from, as in a recovery, and named too).
// While a cancel is under way the job takes no restore (refused, retry).

/** Operator requests that wait for one job's cancel (bounded like every queue). */
export const MAX_CONTROL_WAITERS = 16;

export function onControl(st: ClusterState, reqId: number, jobId: string, action: JobAction, epoch: bigint | null, out: ClusterStep): void {
  const refuse = (reason: string, code: 'not-found' | 'failed-precondition' | 'aborted'): void => st.answerLocal(out, reqId, { kind: 'refused', reason, code });
  const job = st.jobs.get(jobId);
  if (!job) return refuse(`unknown job ${JSON.stringify(jobId)} in cluster ${st.config.clusterId}`, 'not-found');
  if (!job.local) return refuse(`job ${jobId} is grid-managed: control it at the grid (gridckpt job ${action} --grid ADDR ${jobId})`, 'failed-precondition');
  if (action === 'restore') return restore(st, reqId, job, epoch, out);
  if (job.cancel) {
    if (job.cancel.waiters.length >= MAX_CONTROL_WAITERS) return refuse(`at most ${MAX_CONTROL_WAITERS} requests wait for the cancel of job ${jobId}`, 'aborted');
    job.cancel.waiters.push({ reqId, action });
    return;
  }
  if (!isLive(job)) {
    // Nothing runs: a cancel is done already, a delete forgets it now.
    if (action === 'delete') forget(st, job, out);
    return st.answerLocal(out, reqId, { kind: 'controlled', state: action === 'delete' ? 'deleted' : job.state, confirmed: [], unconfirmed: [] });
  }
  const reason = 'cancelled by an operator';
  cancelRound(st, job, reason, out);
  if (job.restart?.answer) st.answer(out, job.restart.answer, { kind: 'refused', reason });
  job.restart = null;
  job.resume = null;
  job.final = null;
  job.nextRoundAtMs = null;
  job.recoveringSinceMs = null;
  job.lastError = reason;
  st.become(job, 'stopped', reason);
  job.cancel = { waiters: [{ reqId, action }], waiting: new Map(), confirmed: [], unconfirmed: [] };
  for (const n of st.nodesOf(job)) job.cancel.waiting.set(st.callAgent(out, n, { kind: 'stopJob', jobId: job.jobId, gen: st.nextGen() }, job.jobId, 'stop', null), n);
  // (The mutant answers before any stop is: the units may still run when the operator hears "stopped".)
  if (job.cancel.waiting.size === 0 || st.mutant('cancel-answers-before-stop')) endCancel(st, job, out);
}

/** An agent answered (or did not) a cancel's stop. */
export function onStopAnswer(st: ClusterState, job: Job, reqId: number, ok: boolean, out: ClusterStep): void {
  const c = job.cancel;
  const node = c?.waiting.get(reqId);
  if (!c || node === undefined) return;
  c.waiting.delete(reqId);
  (ok ? c.confirmed : c.unconfirmed).push(node);
  if (c.waiting.size === 0) endCancel(st, job, out);
}

function endCancel(st: ClusterState, job: Job, out: ClusterStep): void {
  const c = job.cancel!;
  job.cancel = null;
  const deleting = c.waiters.some((w) => w.action === 'delete');
  if (deleting) forget(st, job, out);
  // The mutant's answer claims every node stopped, its stops still on their way.
  const confirmed = [...c.confirmed, ...(st.mutant('cancel-answers-before-stop') ? c.waiting.values() : [])].sort();
  for (const w of c.waiters) {
    st.answerLocal(out, w.reqId, { kind: 'controlled', state: deleting ? 'deleted' : job.state, confirmed, unconfirmed: [...c.unconfirmed].sort() });
  }
}

/** The job leaves the core and its row the table; the highest epoch it used stays known (C3). */
function forget(st: ClusterState, job: Job, out: ClusterStep): void {
  const highest = [job.epochCeiling, job.round.status().highestEpoch, ...job.committed].reduce((a, b) => (b > a ? b : a), 0n);
  st.jobs.delete(job.jobId);
  st.rememberEpochs(job.jobId, st.mutant('delete-forgets-epochs') ? 0n : highest, job.placement);
  out.persist.push({ kind: 'jobForgotten', jobId: job.jobId, highestEpoch: highest });
  st.emit({ kind: 'jobForgotten', jobId: job.jobId, highestEpoch: highest });
}

function restore(st: ClusterState, reqId: number, job: Job, epoch: bigint | null, out: ClusterStep): void {
  const refuse = (reason: string, code: 'not-found' | 'failed-precondition'): void => st.answerLocal(out, reqId, { kind: 'refused', reason, code });
  if (job.cancel) return refuse(`job ${job.jobId} is being cancelled; restore it once the cancel is answered`, 'failed-precondition');
  if (job.restart || job.resume) return refuse(`job ${job.jobId} is ${job.state}: a restart is under way (${job.restart?.reason ?? 'resume'})`, 'failed-precondition');
  if (epoch !== null && !job.committed.includes(epoch)) {
    const list = job.committed.length === 0 ? 'none' : job.committed.join(', ');
    return refuse(`epoch ${epoch} of job ${job.jobId} is not a committed epoch in cluster ${st.config.clusterId} (committed: ${list})`, 'not-found');
  }
  // The newest: with none committed yet, the units start anew (as a recovery that walked back past the oldest).
  const from = epoch ?? job.committed.filter((e) => !job.badEpochs.has(e)).at(-1) ?? null;
  beginRestart(st, job, `restored by an operator ${from === null ? 'from the beginning (no committed epoch)' : `from epoch ${from}`}`, null, out, { epoch: from, adopt: [], answer: { to: 'local', reqId, restore: true } });
}
