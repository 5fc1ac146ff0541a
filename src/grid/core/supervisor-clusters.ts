import type { Monitor, VerdictChange } from '../../detector/monitor.js';
import type { Heartbeat } from '../../protocol/messages.js';
import { beginRecovery, failJob } from './supervisor-recovery.js';
import type { GridState } from './supervisor-state.js';
import type { GridStep } from './supervisor-types.js';

// The clusters' side of the grid supervisor core (supervisor.ts): their
// registration (fenced by incarnation), their heartbeats through the
// detector core — each carries the states of the cluster's shares (push,
// not poll) and its free room, and its answer names the jobs whose lease it
// renews — and what the verdicts and the shares' states mean for the jobs.
// A cluster's beat counts only once it registered with this incarnation of
// the grid: an unknown one is answered known:false and registers again.

export function onRegister(st: GridState, monitor: Monitor, r: { reqId: number; clusterId: string; incarnation: bigint; agentLeaseMs: number }, out: GridStep): void {
  const answer = (ok: boolean, reason: string): void => void out.reply.push({ to: r.clusterId, kind: 'registered', reqId: r.reqId, ok, reason });
  const c = st.clusters.get(r.clusterId);
  if (c && c.registered && r.incarnation < c.incarnation) return answer(false, `fenced: cluster ${r.clusterId} incarnation ${r.incarnation} is older than ${c.incarnation}`);
  const restarted = c !== undefined && c.registered && r.incarnation > c.incarnation && c.verdict !== 'failed';
  const sameBack = c !== undefined && c.registered && c.incarnation === r.incarnation;
  const resumed = c !== undefined && !c.registered;
  st.clusters.set(r.clusterId, {
    clusterId: r.clusterId, incarnation: r.incarnation, verdict: 'alive', lastGrantMs: c?.lastGrantMs ?? st.nowMs, freeUnits: c?.freeUnits ?? 0,
    registered: true, reported: new Map(), agentLeaseMs: r.agentLeaseMs, checkForgotten: resumed,
  });
  // Failed is final for an incarnation in the detector: the same one back (a healed partition) starts afresh.
  if (sameBack) monitor.step({ kind: 'unwatch', peer: r.clusterId }, st.nowMs);
  verdicts(st, monitor.step({ kind: 'watch', peer: r.clusterId, incarnation: r.incarnation }, st.nowMs).changes, out);
  st.emit({ kind: 'clusterRegistered', clusterId: r.clusterId, incarnation: r.incarnation });
  // A new incarnation knows none of the old one's jobs: for them it is lost.
  if (restarted) clusterLost(st, r.clusterId, `cluster ${r.clusterId} restarted (incarnation ${c.incarnation} → ${r.incarnation})`, out);
  answer(true, 'registered');
}

export function onBeat(st: GridState, monitor: Monitor, hb: Heartbeat, out: GridStep): void {
  const c = st.clusters.get(hb.member);
  const reply = (known: boolean, leasedJobs: string[]): void => void out.reply.push({ to: hb.member, kind: 'beat', seq: hb.seq, answer: { known, leasedJobs, leaseMs: st.config.clusterLeaseMs, fence: st.fence() } });
  if (!c || !c.registered || hb.incarnation !== c.incarnation || c.verdict === 'failed') return reply(false, []);
  const r = monitor.step({ kind: 'heartbeat', peer: hb.member, incarnation: hb.incarnation, sentSeq: hb.seq }, st.nowMs);
  verdicts(st, r.changes, out);
  if (r.ignored !== null || st.clusters.get(hb.member)?.verdict === 'failed') return reply(false, []);
  c.freeUnits = hb.freeUnits;
  c.reported = new Map(hb.jobs.filter((j) => j.gen === st.jobs.get(j.jobId)?.gen).map((j) => [j.jobId, j.state]));
  const leased = leasedOn(st, hb.member);
  // max: a submit or restore still in flight may have set a later bound (send + deadline) than this answer (G1).
  if (leased.length > 0) c.lastGrantMs = Math.max(c.lastGrantMs, st.nowMs);
  reply(true, leased);
  // Back to a grid that restarted: a share it does not know was lost with an incarnation this grid never saw.
  if (c.checkForgotten) forgotten(st, hb, out);
  c.checkForgotten = false;
  onShares(st, hb.member, out);
}

function leasedOn(st: GridState, clusterId: string): string[] {
  return [...st.jobs.values()]
    .filter((j) => (j.state === 'running' || j.state === 'recovering') && !j.lost.has(clusterId) && st.clustersOf(j).includes(clusterId))
    .map((j) => j.jobId).sort();
}

/**
 * What a cluster's heartbeat says of its shares: a failed one (the cluster
 * could not recover it) is lost for this job, as if the cluster were — its
 * units move; a fenced, stopped or forgotten one rolls the job back in place;
 * completion is noted (checkFinal).
 */
function onShares(st: GridState, clusterId: string, out: GridStep): void {
  for (const job of st.jobs.values()) {
    if (job.state !== 'running' || job.recovery || job.submit || !st.clustersOf(job).includes(clusterId)) continue;
    const share = st.clusters.get(clusterId)!.reported.get(job.jobId);
    // (The old grid acted on fenced shares only: a failed one then ran aborted rounds forever.)
    if (share === 'unit-failed') {
      // The job's restart policy failed it there: moving its units would only run the failing unit again.
      failJob(st, job, `a unit failed in cluster ${clusterId} and the job's restart policy fails the job`, out);
    } else if (share === 'failed' && !st.mutant('restore-onto-dead-node')) {
      job.shareLostAtMs.set(clusterId, st.nowMs);
      beginRecovery(st, job, `cluster ${clusterId} has the job failed: its units move`, clusterId, out);
    } else if (share === 'fenced' || share === 'stopped') {
      beginRecovery(st, job, `cluster ${clusterId} has the job ${share}`, null, out);
    }
  }
}

function forgotten(st: GridState, hb: Heartbeat, out: GridStep): void {
  const known = new Set(hb.jobs.map((j) => j.jobId));
  for (const job of st.jobs.values()) {
    if (job.state === 'running' && !job.recovery && st.clustersOf(job).includes(hb.member) && !known.has(job.jobId)) {
      beginRecovery(st, job, `cluster ${hb.member} no longer has the job`, null, out);
    }
  }
}

export function verdicts(st: GridState, changes: VerdictChange[], out: GridStep | null): void {
  for (const ch of changes) {
    const c = st.clusters.get(ch.peer);
    if (!c || c.incarnation !== ch.incarnation) continue;
    c.verdict = ch.to;
    st.emit({ kind: 'clusterVerdict', change: ch });
    if (ch.to !== 'failed') continue;
    st.failuresDetected += 1;
    clusterLost(st, ch.peer, `cluster ${ch.peer} declared failed by the grid's detector`, out);
  }
}

export function clusterLost(st: GridState, clusterId: string, reason: string, out: GridStep | null): void {
  for (const job of st.jobs.values()) {
    if ((job.state !== 'running' && job.state !== 'recovering') || !st.clustersOf(job).includes(clusterId)) continue;
    beginRecovery(st, job, reason, clusterId, out);
  }
}
