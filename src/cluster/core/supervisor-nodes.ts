import { checkName } from '../../common/names.js';
import { incarnationRefusal } from '../../protocol/bounds.js';
import type { Verdict, VerdictChange } from '../../detector/monitor.js';
import type { Heartbeat, MemberJobState } from '../../protocol/messages.js';
import { onResumeBeat } from './supervisor-resume.js';
import { beginRestart, failJob } from './supervisor-restart.js';
import { isLive, type ClusterState, type Job, type NodeEntry } from './supervisor-state.js';
import type { ClusterStep } from './supervisor-types.js';

// Node membership in the cluster supervisor core (supervisor.ts):
// registration (an agent's RegisterNode, fenced by incarnation), heartbeats
// (the detector's input, the leases they renew, the job states they carry),
// the detector's verdicts, and what a node's reports mean for its jobs: a
// restart in place for fenced units, the end of a job once every node
// reported it completed (then, for a local job, its final round: C5).

export function onNodeRegistered(st: ClusterState, i: { reqId: number; nodeId: string; incarnation: bigint; capacityUnits: number }, out: ClusterStep): void {
  const refuse = (reason: string): void => void out.reply.push({ to: i.nodeId, kind: 'registered', reqId: i.reqId, answer: { ok: false, reason } });
  try {
    checkName('node', i.nodeId);
  } catch (err) {
    return refuse(err instanceof Error ? err.message : String(err));
  }
  if (typeof i.incarnation !== 'bigint') return refuse(`bad incarnation ${String(i.incarnation)} of node ${i.nodeId}`);
  if (!Number.isSafeInteger(i.capacityUnits) || i.capacityUnits < 0) return refuse(`bad capacity ${String(i.capacityUnits)} of node ${i.nodeId}: expected an integer >= 0`);
  const old = st.nodes.get(i.nodeId);
  // Older is fenced; far newer is no restart of the node registered (protocol/bounds.ts): neither evicts it.
  const implausible = incarnationRefusal(`node ${i.nodeId}`, old?.incarnation ?? null, i.incarnation);
  if (implausible !== null) return refuse(implausible);
  if (!old && st.nodes.size >= st.config.detector.maxPeers) return refuse(`cluster ${st.config.clusterId} already has ${st.nodes.size} nodes (limit ${st.config.detector.maxPeers})`);
  const restarted = old !== undefined && i.incarnation > old.incarnation;
  // The same incarnation, still watched: its verdict and reports stand (it was told unknown for a stale beat, say).
  const same = old !== undefined && !restarted && old.verdict !== 'failed';
  const node: NodeEntry = {
    nodeId: i.nodeId, incarnation: i.incarnation, capacityUnits: i.capacityUnits, verdict: same ? old.verdict : 'alive',
    // Leases the old registration holds still count; so do the previous coordinator incarnation's (resume).
    lastGrantMs: Math.max(old?.lastGrantMs ?? st.nowMs, st.resumeGrantFloor()),
    startBounds: old?.startBounds ?? new Map(),
    registeredAtMs: same ? old.registeredAtMs : st.nowMs,
    reported: same ? old.reported : new Map(),
  };
  st.nodes.set(i.nodeId, node);
  // The same incarnation back after a failed verdict (stopped, or cut off): a fresh watch, since failed is final in the detector.
  if (old && old.incarnation === i.incarnation && old.verdict === 'failed') st.monitor.step({ kind: 'unwatch', peer: i.nodeId }, st.nowMs);
  verdicts(st, st.monitor.step({ kind: 'watch', peer: i.nodeId, incarnation: i.incarnation }, st.nowMs).changes, out);
  st.emit({ kind: 'nodeRegistered', nodeId: i.nodeId, incarnation: i.incarnation });
  out.reply.push({ to: i.nodeId, kind: 'registered', reqId: i.reqId, answer: { ok: true } });
  // A new incarnation lost the units it ran: their jobs restart (in place, the node is back).
  if (restarted) for (const j of jobsOn(st, i.nodeId)) beginRestart(st, j, `the agent on ${i.nodeId} restarted`, null, out);
}

export function onAgentBeat(st: ClusterState, hb: Heartbeat, out: ClusterStep): void {
  const node = st.nodes.get(hb.member);
  // Unregistered, another incarnation than the registered one, or failed: the agent registers (again).
  if (!node || hb.incarnation !== node.incarnation || node.verdict === 'failed') return beatReply(st, out, hb, false, []);
  const r = st.monitor.step({ kind: 'heartbeat', peer: hb.member, incarnation: hb.incarnation, sentSeq: hb.seq }, st.nowMs);
  verdicts(st, r.changes, out);
  // (verdicts may have changed it)
  if (r.ignored !== null || (node.verdict as Verdict) === 'failed') return beatReply(st, out, hb, false, []);
  const current = hb.jobs.filter(({ jobId, gen }) => st.jobs.get(jobId)?.startGens.get(hb.member) === gen);
  for (const { jobId, state } of current) node.reported.set(jobId, state);
  const leased = leasedOn(st, hb.member);
  // max: a start still in flight may have set a later bound (send + deadline) than this answer (C1).
  // An answer naming jobs is a grant. (Not every answer: a node whose units are being moved still beats,
  // and its leases must lapse. A start it takes late is counted by the start's own grant, send + call timeout.)
  if (leased.length > 0) node.lastGrantMs = Math.max(node.lastGrantMs, st.nowMs);
  beatReply(st, out, hb, true, leased);
  for (const { jobId, state } of current) onReported(st, hb.member, jobId, state, out);
  onResumeBeat(st, hb, out);
}

/**
 * Job states an agent pushed between its beats (ReportJobs): judged as a
 * beat's reports are, but not a beat — the detector and the leases do not see
 * it. From an unknown, other or failed incarnation it says nothing.
 */
export function onAgentReports(st: ClusterState, member: string, incarnation: bigint, jobs: Heartbeat['jobs'], out: ClusterStep): void {
  const node = st.nodes.get(member);
  if (!node || incarnation !== node.incarnation || node.verdict === 'failed') return;
  const current = jobs.filter(({ jobId, gen }) => st.jobs.get(jobId)?.startGens.get(member) === gen);
  for (const { jobId, state } of current) node.reported.set(jobId, state);
  for (const { jobId, state } of current) onReported(st, member, jobId, state, out);
}

function beatReply(st: ClusterState, out: ClusterStep, hb: Heartbeat, known: boolean, leasedJobs: string[]): void {
  out.reply.push({ to: hb.member, kind: 'beat', seq: hb.seq, answer: { known, leasedJobs, leaseMs: st.config.agentLeaseMs } });
}

/** Jobs a node may keep running: placed there and live (a grid-managed one is fenced here when the grid's lease lapses, C6). */
function leasedOn(st: ClusterState, nodeId: string): string[] {
  return [...st.jobs.values()]
    .filter((j) => isLive(j) && placedOn(j, nodeId) && !j.restart?.lost.has(nodeId))
    .map((j) => j.jobId).sort();
}

export function verdicts(st: ClusterState, changes: VerdictChange[], out: ClusterStep): void {
  for (const c of changes) {
    st.emit({ kind: 'nodeVerdict', change: c });
    const node = st.nodes.get(c.peer);
    if (!node || node.incarnation !== c.incarnation) continue;
    node.verdict = c.to;
    if (c.to !== 'failed') continue;
    st.failuresDetected += 1;
    for (const j of jobsOn(st, c.peer)) beginRestart(st, j, `node ${c.peer} declared failed by the detector`, c.peer, out);
  }
}

export function jobsOn(st: ClusterState, nodeId: string): Job[] {
  return [...st.jobs.values()].filter((j) => isLive(j) && placedOn(j, nodeId));
}

/** Whether any unit of the job is placed on the node (no copy of the placement: asked for every job on every beat). */
function placedOn(job: Job, nodeId: string): boolean {
  for (const n of job.placement.values()) if (n === nodeId) return true;
  return false;
}

/**
 * A unit of a running job failed on a node (it exited non-zero or was
 * killed: the agent then stops the job's other units there and reports the
 * job failed). The job's restart policy decides, here alone: restore the
 * whole job from its last committed epoch (units of every node roll back
 * together: the cut must stay consistent, §3.2), at most maxRestarts times
 * over the job's life, or fail it. A node lost, a lease lapsed or units
 * stopped are not unit failures: they restart as before, whatever the policy.
 */
function onUnitFailure(st: ClusterState, job: Job, nodeId: string, out: ClusterStep): void {
  const policy = job.restartPolicy;
  const what = `a unit of job ${job.jobId} failed on ${nodeId}`;
  if (policy.onUnitFailure === 'fail' || job.unitRestarts >= policy.maxRestarts) {
    job.failedByPolicy = true;
    return failJob(st, job, policy.onUnitFailure === 'fail' ? `${what}; its restart policy is to fail` : `${what}; gave up after ${policy.maxRestarts} restarts (restartPolicy.maxRestarts)`, out);
  }
  job.unitRestarts += 1;
  job.rowDirty = true;
  beginRestart(st, job, `${what}: restoring it from its last epoch (restart ${job.unitRestarts} of ${policy.maxRestarts})`, null, out);
}

/** A node's report on a job (of the node's last start): fenced units restart in place; completion is noted. */
function onReported(st: ClusterState, nodeId: string, jobId: string, state: MemberJobState, out: ClusterStep): void {
  const job = st.jobs.get(jobId);
  if (!job || job.state !== 'running' || !placedOn(job, nodeId)) return;
  if (state === 'failed') return onUnitFailure(st, job, nodeId, out);
  if (state === 'fenced' || state === 'stopped') {
    beginRestart(st, job, `the units on ${nodeId} were ${state}`, null, out);
    return;
  }
  // (This node's report is one of those looked at: one that is not completed ends it before the job's nodes are listed.)
  if (state !== 'completed' || job.allDoneAtMs !== null || !st.nodesOf(job).every((n) => st.nodes.get(n)?.reported.get(jobId) === 'completed')) return;
  job.allDoneAtMs = st.nowMs;
  if (!job.local) return; // a grid-managed job's final round is the grid's
  if (st.mutant('complete-without-final-round')) return st.become(job, 'completed', 'every unit completed');
  // A local job's end state must be in a committed epoch: a final round, at once (C5).
  job.final = { failures: 0, reasons: [], atMs: st.nowMs, epoch: null };
  job.nextRoundAtMs = null;
}
