import type { JobAction } from '../../protocol/messages.js';
import { beginRecovery, refuseRestores, safeAfter } from './supervisor-recovery.js';
import { refuseCheckpoints, roundStep } from './supervisor-rounds.js';
import type { GJob, GridState } from './supervisor-state.js';
import type { ControlAnswer, GridStep } from './supervisor-types.js';

// Job control at the grid (`gridckpt job cancel|delete|restore --grid`), in
// the grid supervisor core (supervisor.ts):
//   cancel   the job becomes `stopped` in the catalog (written before the
//            stops leave: a restarted grid does not recover it), its round
//            aborted, its recovery given up; every share's cluster is told
//            to stop it, and the grid renews its lease no more (a cluster
//            that misses the stop fences the share when the lease lapses).
//            Answered once every cluster answered; `unconfirmed` names those
//            that did not.
//   delete   cancel if live, then forget the job; the highest epoch it used
//            stays in the catalog, so that a job submitted again under its
//            id numbers above it (G3: the clusters' stores still hold its
//            epochs, and each cluster refuses an epoch it has seen); a job
//            under the id waits until a share a cluster did not confirm
//            stopped has surely ended (G1: its leases lapsed).
//   restore  a recovery of every share from a recovery line — the newest
//            (the beginning if there is none), or the one named (newer lines
//            are dropped: the job goes on from it) — from any state but
//            recovering; answered when the units run again, with the line
//            they run from.

/** Operator requests that wait for one job's cancel or restore (G6). */
export const MAX_CONTROL_WAITERS = 16;
/** Deleted jobs whose highest epoch the catalog keeps (G6); past it the oldest goes. */
export const MAX_FORGOTTEN = 4_096;

export function onControl(st: GridState, reqId: number, jobId: string, action: JobAction, line: bigint | null, out: GridStep): void {
  const refuse = (code: 'not-found' | 'failed-precondition' | 'aborted', reason: string): void => answer(out, reqId, { kind: 'refused', code, reason });
  const job = st.jobs.get(jobId);
  if (!job) return refuse('not-found', `unknown job ${JSON.stringify(jobId)} on grid ${st.config.gridId}`);
  if (action === 'restore') return restore(st, reqId, job, line, out);
  if (job.cancel) {
    if (job.cancel.waiters.length >= MAX_CONTROL_WAITERS) return refuse('aborted', `at most ${MAX_CONTROL_WAITERS} requests wait for the cancel of job ${jobId}`);
    job.cancel.waiters.push({ reqId, action });
    return;
  }
  if (job.state !== 'running' && job.state !== 'recovering') {
    if (action === 'delete') forget(st, job, [], out);
    return answer(out, reqId, { kind: 'done', state: action === 'delete' ? 'deleted' : job.state, line: null, passedOver: [], confirmed: [], unconfirmed: [] });
  }
  const reason = 'cancelled by an operator';
  const s = job.round.status();
  if (s.phase !== 'idle' && s.epoch !== null) roundStep(st, job, { kind: 'cancel', epoch: s.epoch, reason }, out);
  refuseCheckpoints(st, job, 'failed-precondition', `job ${jobId} was ${reason}`, out);
  // The submit took: the job is recorded (and its spec kept for a restore), now stopped.
  if (job.submit) out.reply.push({ to: 'operator', kind: 'submitted', reqId: job.submit.reqId, ok: true, reason: `started; ${reason}` });
  job.submit = null;
  refuseRestores(job, reason, out);
  job.recovery = null;
  job.final = null;
  job.lastError = reason;
  st.become(job, 'stopped', reason);
  st.save(out);
  job.cancel = { waiters: [{ reqId, action }], waiting: new Map(), confirmed: [], unconfirmed: [] };
  for (const c of st.clustersOf(job)) {
    if (job.lost.has(c)) job.cancel.unconfirmed.push(c);
    else job.cancel.waiting.set(st.call(out, c, { kind: 'stopJob', jobId }, jobId, 'stop', null), c);
  }
  // (The mutant answers before any stop is: the shares may still run when the operator hears "stopped".)
  if (job.cancel.waiting.size === 0 || st.mutant('cancel-answers-before-stop')) endCancel(st, job, out);
}

/** A cluster answered (or did not) a stop; only a cancel's are waited for. */
export function onStopAnswer(st: GridState, job: GJob, reqId: number, ok: boolean, out: GridStep): void {
  const c = job.cancel;
  const cluster = c?.waiting.get(reqId);
  if (!c || cluster === undefined) return;
  c.waiting.delete(reqId);
  (ok ? c.confirmed : c.unconfirmed).push(cluster);
  if (c.waiting.size === 0) endCancel(st, job, out);
}

function endCancel(st: GridState, job: GJob, out: GridStep): void {
  const c = job.cancel!;
  job.cancel = null;
  const deleting = c.waiters.some((w) => w.action === 'delete');
  if (deleting) forget(st, job, c.unconfirmed, out);
  const state = deleting ? 'deleted' : job.state;
  // The mutant's answer claims every share stopped, its stops still on their way.
  const confirmed = [...c.confirmed, ...(st.mutant('cancel-answers-before-stop') ? c.waiting.values() : [])].sort();
  for (const w of c.waiters) answer(out, w.reqId, { kind: 'done', state, line: null, passedOver: [], confirmed, unconfirmed: [...c.unconfirmed].sort() });
}

/** unconfirmed: clusters that may still run a share: a job under the id is refused until their leases surely lapsed (G1). */
function forget(st: GridState, job: GJob, unconfirmed: readonly string[], out: GridStep): void {
  const holdUntil = Math.max(0, ...unconfirmed.map((c) => safeAfter(st, job, c)));
  if (holdUntil > st.nowMs) st.forgottenHolds.set(job.jobId, holdUntil);
  st.jobs.delete(job.jobId);
  const highest = st.mutant('delete-forgets-epochs') ? 0n : job.highestEpoch;
  st.forgotten.delete(job.jobId);
  st.forgotten.set(job.jobId, highest);
  for (const id of st.forgotten.keys()) {
    if (st.forgotten.size <= MAX_FORGOTTEN) break;
    st.forgotten.delete(id);
    st.forgottenHolds.delete(id);
  }
  st.emit({ kind: 'jobForgotten', jobId: job.jobId, highestEpoch: highest });
  st.save(out);
}

function restore(st: GridState, reqId: number, job: GJob, line: bigint | null, out: GridStep): void {
  const refuse = (code: 'not-found' | 'failed-precondition' | 'aborted', reason: string): void => answer(out, reqId, { kind: 'refused', code, reason });
  if (job.cancel) return refuse('failed-precondition', `job ${job.jobId} is being cancelled; restore it once the cancel is answered`);
  if (job.state === 'recovering' || job.recovery) return refuse('failed-precondition', `job ${job.jobId} is recovering (${job.recovery?.reason ?? job.lastError}); restore it once that ends`);
  if (job.submit) return refuse('failed-precondition', `job ${job.jobId} is still starting`);
  if (job.restoreAsks.length >= MAX_CONTROL_WAITERS) return refuse('aborted', `at most ${MAX_CONTROL_WAITERS} restores of job ${job.jobId} wait`);
  if (line !== null && !job.lines.some((l) => l.epoch === line)) {
    return refuse('not-found', `line ${line} of job ${job.jobId} is not a recovery line of grid ${st.config.gridId} (lines: ${job.lines.map((l) => l.epoch).join(', ') || 'none'})`);
  }
  // The job goes on from the named line: newer ones are no restore points any more (a walk-back does the same).
  if (line !== null) job.lines = job.lines.filter((l) => l.epoch <= line);
  const from = job.lines.at(-1)?.epoch ?? null;
  const reason = `restored by an operator ${from === null ? 'from the beginning (no recovery line)' : `from line ${from}`}`;
  job.restoreAsks.push(reqId);
  // An ended job runs again: its shares' clusters hold them stopped (or completed), and take a restore in any state.
  if (job.state !== 'running') st.become(job, 'running', reason);
  beginRecovery(st, job, reason, null, out);
}

function answer(out: GridStep, reqId: number, a: ControlAnswer): void {
  out.reply.push({ to: 'operator', kind: 'controlled', reqId, answer: a });
}
