import { leaseMarginMs, leaseSafeAfter } from '../../detector/lease.js';
import type { ClusterAnswer } from '../../protocol/messages.js';
import { planGridRecovery, type GridRecoveryPlan } from './recovery-plan.js';
import { refuseCheckpoints, roundStep } from './supervisor-rounds.js';
import type { GJob, GridState } from './supervisor-state.js';
import type { GridStep } from './supervisor-types.js';

// A job's recovery in the grid supervisor core (supervisor.ts): from a lost
// cluster, a fenced, failed or forgotten share, or a damaged line. A lease
// wait (a lost cluster's units run elsewhere only after its lease and its
// agents' leases have surely lapsed, G1), then a plan written to the catalog
// before any restore is asked, then a restore of every share from the last
// line; a busy cluster is asked again later, a damaged epoch walks back.

export function beginRecovery(st: GridState, job: GJob, reason: string, lostCluster: string | null, out: GridStep | null, notBeforeMs = 0): void {
  if (job.state !== 'running' && job.state !== 'recovering') return;
  if (out) {
    if (lostCluster !== null) roundStep(st, job, { kind: 'participantFailed', participant: lostCluster, reason }, out);
    const s = job.round.status();
    if (s.phase !== 'idle' && s.epoch !== null) roundStep(st, job, { kind: 'cancel', epoch: s.epoch, reason }, out);
    refuseCheckpoints(st, job, 'failed-precondition', `job ${job.jobId} is recovering: ${reason}`, out);
  }
  if (lostCluster !== null) job.lost.add(lostCluster);
  const first = job.recovery === null;
  if (first) st.emit({ kind: 'recoveryStarted', jobId: job.jobId, reason });
  st.become(job, 'recovering', reason);
  job.final = null;
  job.lastError = reason;
  const safeAtMs = Math.max(st.nowMs, notBeforeMs, ...[...job.lost].map((id) => safeAfter(st, job, id)));
  job.recovery = {
    reason, attempt: (job.recovery?.attempt ?? 0) + 1, phase: 'leaseWait', safeAtMs, waiting: new Map(), retry: new Map(), restores: new Map(),
    startedAtMs: job.recovery?.startedAtMs ?? st.nowMs, passedOver: job.recovery?.passedOver ?? [], moved: job.recovery?.moved ?? '',
  };
  if (job.submit) {
    if (out) out.reply.push({ to: 'operator', kind: 'submitted', reqId: job.submit.reqId, ok: true, reason: `started; recovering: ${reason}` });
    job.submit = null;
  }
  if (out) {
    st.save(out);
    if (job.recovery.attempt > st.config.maxRecoveryAttempts) failJob(st, job, `${reason}: gave up after ${st.config.maxRecoveryAttempts} attempts`, out);
  }
}

/**
 * When a lost cluster's hold on the job has surely ended (G1): its last
 * grant (for a share lost alone, no later than when the job stopped being
 * leased to it) + its lease + its agents' lease + a margin.
 */
export function safeAfter(st: GridState, job: GJob, id: string): number {
  const c = st.entry(id);
  // A share lost alone stopped being leased when it was lost; a start still in flight to it may lease it later.
  const lastGrant = Math.max(Math.min(c.lastGrantMs, job.shareLostAtMs.get(id) ?? Infinity), st.pendingBound(id));
  const agentLeaseMs = Math.max(st.config.agentLeaseMs, c.agentLeaseMs);
  return leaseSafeAfter(lastGrant, st.config.clusterLeaseMs, agentLeaseMs, leaseMarginMs(st.config.clusterLeaseMs + agentLeaseMs));
}

export function advanceRecovery(st: GridState, job: GJob, out: GridStep): void {
  const r = job.recovery;
  if (!r) return;
  if (r.phase === 'leaseWait' && st.nowMs >= r.safeAtMs) {
    if (job.round.status().phase !== 'idle') return;
    const plan = planFor(st, job);
    if (plan === 'wait') return;
    if (!plan.ok) return failJob(st, job, plan.reason, out);
    if (plan.moved.length > 0) r.moved = `the loss of ${[...job.lost].sort().join(', ')}: units ${plan.moved.join(', ')} moved to ${plan.target}`;
    job.clusters = plan.clusters;
    r.restores = plan.restores;
    job.gen += 1;
    for (const c of st.clusters.values()) c.reported.delete(job.jobId);
    r.phase = 'restoring';
    st.save(out); // the plan is on disk before any restore is asked
    for (const c of st.clustersOf(job)) askRestore(st, job, c, out);
    return;
  }
  if (r.phase === 'restoring') {
    for (const [c, at] of r.retry) {
      if (st.nowMs < at) continue;
      r.retry.delete(c);
      askRestore(st, job, c, out);
    }
    if (r.waiting.size === 0 && r.retry.size === 0) finishRecovery(st, job, out);
  }
}

/**
 * The plan (planGridRecovery, the grid's one recovery planner): lost
 * clusters' units go to the alive cluster with the most room, every share
 * rolls back to the last line, moved units adopted from the store that
 * held them at its cut. Units stay where a cluster is suspected or has not
 * registered again yet: only a lost one's lease has been waited out (G1),
 * so the plan waits for a verdict either way.
 */
function planFor(st: GridState, job: GJob): GridRecoveryPlan | 'wait' {
  const alive = (id: string) => { const c = st.clusters.get(id); return c !== undefined && c.registered && c.verdict === 'alive' && !job.lost.has(id); };
  if (st.clustersOf(job).some((id) => !job.lost.has(id) && !alive(id))) return 'wait';
  const line = job.lines.at(-1);
  const free = new Map([...st.clusters.values()].filter((c) => alive(c.clusterId)).map((c) => [c.clusterId, c.freeUnits]));
  return planGridRecovery({
    clusters: job.clusters, lost: job.lost, free,
    line: line ? { clusterEpochs: Object.fromEntries(Object.entries(line.clusterEpochs).map(([c, e]) => [c, BigInt(e)])), unitClusters: line.unitClusters } : null,
    // A cluster's store is named by its cluster id (a store outlives its coordinator).
    stores: new Map([...st.clusters.keys()].map((c) => [c, c])),
  });
}

function askRestore(st: GridState, job: GJob, c: string, out: GridStep): void {
  const r = job.recovery!.restores.get(c) ?? { units: st.unitsIn(job, c), epoch: null, adopt: [] };
  const adopt = r.adopt.map((a) => ({ fromCluster: a.fromCluster, epoch: a.epoch, units: a.unitIds }));
  const reqId = st.call(out, c, { kind: 'restoreJob', jobId: job.jobId, units: r.units, epoch: r.epoch, adopt, gen: job.gen, leaseMs: st.config.clusterLeaseMs }, job.jobId, 'restore', null);
  job.recovery!.waiting.set(reqId, c);
}

function finishRecovery(st: GridState, job: GJob, out: GridStep): void {
  const r = job.recovery!;
  // An operator's restore is answered with the line the units run from, and the lines a walk-back passed over.
  const line = job.lines.at(-1)?.epoch ?? null;
  for (const reqId of job.restoreAsks.splice(0)) out.reply.push({ to: 'operator', kind: 'controlled', reqId, answer: { kind: 'done', state: 'running', line, passedOver: [...r.passedOver], confirmed: [], unconfirmed: [] } });
  job.recovery = null;
  job.lost.clear();
  job.shareLostAtMs.clear();
  job.recoveries += 1;
  // What was restored, and which newer lines it passed over (§3.6: say which).
  const walked = r.passedOver.length > 0 ? `; rolled back to line ${job.lines.at(-1)?.epoch ?? 'none'}, passing over ${r.passedOver.join('; ')}` : '';
  job.lastError = `recovered from ${r.moved || r.reason}${walked}`;
  st.emit({ kind: 'recovered', jobId: job.jobId, ms: st.nowMs - r.startedAtMs, ok: true, detail: job.lastError });
  st.become(job, 'running', job.lastError);
  job.nextRoundAtMs = st.nowMs;
  st.save(out);
}

/** Operator restores waiting on the job's recovery get none (it failed, or the job was cancelled). */
export function refuseRestores(job: GJob, reason: string, out: GridStep): void {
  for (const reqId of job.restoreAsks.splice(0)) out.reply.push({ to: 'operator', kind: 'controlled', reqId, answer: { kind: 'refused', code: 'aborted', reason } });
}

export function failJob(st: GridState, job: GJob, reason: string, out: GridStep): void {
  refuseRestores(job, reason, out);
  const s = job.round.status();
  if (s.phase !== 'idle' && s.epoch !== null) roundStep(st, job, { kind: 'cancel', epoch: s.epoch, reason }, out);
  if (job.recovery) st.emit({ kind: 'recovered', jobId: job.jobId, ms: st.nowMs - job.recovery.startedAtMs, ok: false, detail: reason });
  job.recovery = null;
  job.lastError = reason;
  st.become(job, 'failed', reason);
  refuseCheckpoints(st, job, 'failed-precondition', `job ${job.jobId} failed: ${reason}`, out);
  for (const c of st.clustersOf(job)) if (!job.lost.has(c)) st.call(out, c, { kind: 'stopJob', jobId: job.jobId }, job.jobId, 'stop', null);
  st.save(out);
}

export function onRestoreAnswer(st: GridState, job: GJob, reqId: number, cluster: string, answer: ClusterAnswer, unreachable: boolean, out: GridStep): void {
  const r = job.recovery;
  if (!r || !r.waiting.delete(reqId)) return;
  if (answer.kind === 'ok') return advanceRecovery(st, job, out);
  if (answer.kind === 'busy') {
    r.retry.set(cluster, st.nowMs + st.config.retryMs);
    return;
  }
  if (answer.kind === 'corrupt' && st.mutant('no-walk-back')) return failJob(st, job, `restore in ${cluster} failed: ${answer.reason}`, out);
  if (answer.kind === 'corrupt') {
    // Walk back (§3.6): no line at or above the damaged epoch can be restored whole; every share rolls back further.
    for (const l of job.lines.filter((x) => x.epoch >= answer.epoch).reverse()) r.passedOver.push(`line ${l.epoch}: cluster ${cluster}: ${answer.reason}`);
    job.lines = job.lines.filter((l) => l.epoch < answer.epoch);
    return beginRecovery(st, job, `epoch ${answer.epoch} in store ${answer.store} is damaged (${answer.reason}); walking back to line ${job.lines.at(-1)?.epoch ?? 'none'}`, null, out);
  }
  const c = st.clusters.get(cluster);
  const gone = unreachable && (c?.verdict !== 'alive');
  // Not (yet) lost: ask again after a pause rather than spend every attempt at once.
  beginRecovery(st, job, `restore in ${cluster} failed: ${'reason' in answer ? answer.reason : answer.kind}`, gone ? cluster : null, out, st.nowMs + st.config.retryMs);
}
