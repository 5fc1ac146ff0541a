import { Monitor, type VerdictChange } from '../../detector/monitor.js';
import { RoundCoordinator } from '../../protocol/core/round.js';
import type { AgentAnswer, ClusterCall, Heartbeat, MemberJobState } from '../../protocol/messages.js';
import { checkClusterInvariants } from './supervisor-checks.js';
import { advanceRestart, beginRestart, onRestartAnswer } from './supervisor-restart.js';
import { cancelRound, roundStep } from './supervisor-rounds.js';
import { ClusterState, isLive, type Job } from './supervisor-state.js';
import type { ClusterInput, ClusterJobState, ClusterStep, ClusterSupervisorConfig, ClusterPersist } from './supervisor-types.js';

// The cluster coordinator's job supervisor as a pure core (ARCHITECTURE §8):
// node membership through the detector core, the grid's two-level rounds
// through the round core, and each job's lifecycle — start, recovery from a
// lost node, rollback for the grid, leases and fencing, completion — as a
// state machine whose waits are deadlines and whose calls are sends.
//
// Intuition: a job is either running, or being (re)started by a "restart"
// that goes stop → lease wait → restore and can go round again: a node that
// dies during a restore is one more lost node (re-plan, never fail while
// room remains); a restore source that fails verification is an epoch to
// walk back from (every node of the job on the same older epoch). The
// grid's lease bounds every grid-managed job: when it lapses, the job is
// fenced here before the grid may run it elsewhere.
//
// Invariants (checkInvariants; tests cite them as C1..C7):
//  C1. A node's units run elsewhere only after its lease has surely lapsed:
//      a restore that moves units off a lost node is sent no earlier than
//      the node's last grant + agentLeaseMs + margin.
//  C2. A job's placement uses only registered nodes, each within capacity.
//  C3. Epochs only grow: every PREPARE of a job names an epoch above every
//      earlier one this incarnation saw (the round core's invariant 1).
//  C4. A job with a restart in progress has no round running.
//  C5. A job is `completed` only if an epoch committed after all of its
//      units reported completion.
//  C6. A grid-managed job whose grid lease lapsed is fenced, not running.
//  C7. Bounded: jobs ≤ maxJobs, committed epochs ≤ keepEpochs per job.
//
// The parts: the state and its shared primitives (supervisor-state.ts), the
// restart machine (supervisor-restart.ts), a job's rounds (supervisor-rounds.ts)
// and the invariant checks (supervisor-checks.ts); membership, the grid's
// calls, agents' answers and time are here.

export class ClusterSupervisor {
  private readonly st: ClusterState;
  private readonly monitor: Monitor;
  private nextBeatMs = 0;
  private beatSeq = 0;
  private gridIncarnation = 0n;
  private gridLeaseMs: number;
  failuresDetected = 0;

  constructor(private readonly config: ClusterSupervisorConfig) {
    this.st = new ClusterState(config);
    this.monitor = new Monitor(config.detector);
    this.gridLeaseMs = config.gridLeaseMs;
  }

  step(input: ClusterInput, nowMs: number): ClusterStep {
    if (nowMs < this.st.nowMs) throw new Error(`cluster time went back: ${nowMs} < ${this.st.nowMs}`);
    this.st.nowMs = nowMs;
    const out: ClusterStep = { persist: [], send: [], reply: [] };
    this.verdicts(this.monitor.step({ kind: 'tick' }, nowMs).changes, out);
    switch (input.kind) {
      case 'agentHeartbeat': this.onAgentBeat(input.hb, out); break;
      case 'agentAnswer': this.onAgentAnswer(input.reqId, input.answer, out); break;
      case 'agentUnreachable': this.onAgentAnswer(input.reqId, { kind: 'refused', reason: `unreachable: ${input.reason}` }, out, true); break;
      case 'gridCall': this.onGridCall(input.call, out); break;
      case 'gridHeartbeatAnswer': this.onGridBeatAnswer(input.sentAtMs, input.answer); break;
      case 'persisted': this.onPersisted(input.what, null, out); break;
      case 'persistFailed': this.onPersisted(input.what, input.reason, out); break;
      case 'tick': break;
    }
    this.onTime(out);
    return out;
  }

  nextDeadline(): number | null {
    let at = this.nextBeatMs;
    // nextStepMs: the detector also asks to be stepped every tick, to tell its own pauses from its peers' silence.
    const m = this.monitor.nextStepMs();
    if (m !== null) at = Math.min(at, m);
    for (const j of this.st.jobs.values()) {
      const r = j.round.nextDeadlineMs();
      if (r !== null) at = Math.min(at, r);
      // Past its lease wait, a restart waits for a verdict (a heartbeat or a detector deadline), not a time.
      if (j.restart?.phase === 'leaseWait' && j.restart.safeAtMs > this.st.nowMs) at = Math.min(at, j.restart.safeAtMs);
      if (j.state === 'running' || j.state === 'recovering') at = Math.min(at, j.gridLeaseUntilMs);
    }
    return at;
  }

  jobState(jobId: string): ClusterJobState | null {
    return this.st.jobs.get(jobId)?.state ?? null;
  }

  jobView(jobId: string): { state: ClusterJobState; placement: Map<string, string>; committed: bigint[] } | null {
    const j = this.st.jobs.get(jobId);
    return j ? { state: j.state, placement: new Map(j.placement), committed: [...j.committed] } : null;
  }

  // ---- membership --------------------------------------------------------------

  private onAgentBeat(hb: Heartbeat, out: ClusterStep): void {
    let node = this.st.nodes.get(hb.member);
    if (node && hb.incarnation < node.incarnation) return this.beatReply(out, hb, false, []);
    if (!node || hb.incarnation > node.incarnation || node.verdict === 'failed') {
      const restarted = node !== undefined && hb.incarnation > node.incarnation;
      const old = node;
      node = { nodeId: hb.member, incarnation: hb.incarnation, capacityUnits: hb.freeUnits, verdict: 'alive', lastGrantMs: old?.lastGrantMs ?? this.st.nowMs, reported: new Map() };
      this.st.nodes.set(hb.member, node);
      if (old && old.incarnation === hb.incarnation) this.monitor.step({ kind: 'unwatch', peer: hb.member }, this.st.nowMs);
      this.verdicts(this.monitor.step({ kind: 'watch', peer: hb.member, incarnation: hb.incarnation }, this.st.nowMs).changes, out);
      // A new incarnation lost the units it ran: their jobs restart (in place, the node is back).
      if (restarted) for (const j of this.jobsOn(hb.member)) beginRestart(this.st, j, `the agent on ${hb.member} restarted`, null, out);
    }
    const r = this.monitor.step({ kind: 'heartbeat', peer: hb.member, incarnation: hb.incarnation, sentSeq: hb.seq }, this.st.nowMs);
    this.verdicts(r.changes, out);
    if (r.ignored !== null || node.verdict === 'failed') return this.beatReply(out, hb, false, []);
    for (const { jobId, state, gen } of hb.jobs) if (this.st.jobs.get(jobId)?.startGens.get(hb.member) === gen) node.reported.set(jobId, state);
    const leased = this.leasedOn(hb.member);
    // max: a start still in flight may have set a later bound (send + deadline) than this answer (C1).
    // An answer naming jobs is a grant. (Not every answer: a node whose units are being moved still beats,
    // and its leases must lapse. A start it takes late is counted by the start's own grant, send + call timeout.)
    if (leased.length > 0) node.lastGrantMs = Math.max(node.lastGrantMs, this.st.nowMs);
    this.beatReply(out, hb, true, leased);
    for (const { jobId, state, gen } of hb.jobs) if (this.st.jobs.get(jobId)?.startGens.get(hb.member) === gen) this.onReported(hb.member, jobId, state, out);
  }

  private beatReply(out: ClusterStep, hb: Heartbeat, known: boolean, leasedJobs: string[]): void {
    out.reply.push({ to: hb.member, kind: 'beat', seq: hb.seq, answer: { known, leasedJobs, leaseMs: this.config.agentLeaseMs } });
  }

  /** Jobs a node may keep running: placed there, running, and leased from the grid. */
  private leasedOn(nodeId: string): string[] {
    return [...this.st.jobs.values()]
      .filter((j) => isLive(j) && [...j.placement.values()].includes(nodeId) && !j.restart?.lost.has(nodeId))
      .map((j) => j.jobId).sort();
  }

  private verdicts(changes: VerdictChange[], out: ClusterStep): void {
    for (const c of changes) {
      const node = this.st.nodes.get(c.peer);
      if (!node || node.incarnation !== c.incarnation) continue;
      node.verdict = c.to;
      if (c.to !== 'failed') continue;
      this.failuresDetected += 1;
      for (const j of this.jobsOn(c.peer)) beginRestart(this.st, j, `node ${c.peer} declared failed`, c.peer, out);
    }
  }

  private jobsOn(nodeId: string): Job[] {
    return [...this.st.jobs.values()].filter((j) => isLive(j) && [...j.placement.values()].includes(nodeId));
  }

  /** A node's report on a job: fenced units restart in place; completion is noted. */
  private onReported(nodeId: string, jobId: string, state: MemberJobState, out: ClusterStep): void {
    const job = this.st.jobs.get(jobId);
    if (!job || job.state !== 'running' || ![...job.placement.values()].includes(nodeId)) return;
    if (state === 'fenced' || state === 'failed' || state === 'stopped') {
      beginRestart(this.st, job, `the units on ${nodeId} were ${state}`, null, out);
      return;
    }
    if (job.allDoneAtMs === null && this.st.nodesOf(job).every((n) => this.st.nodes.get(n)?.reported.get(jobId) === 'completed')) {
      job.allDoneAtMs = this.st.nowMs;
    }
  }

  // ---- the grid ----------------------------------------------------------------

  private onGridBeatAnswer(sentAtMs: number, a: { known: boolean; leasedJobs: string[]; leaseMs: number }): void {
    if (!a.known) {
      this.nextBeatMs = this.st.nowMs;
      return;
    }
    this.gridLeaseMs = a.leaseMs;
    for (const id of a.leasedJobs) {
      const j = this.st.jobs.get(id);
      if (j) j.gridLeaseUntilMs = Math.max(j.gridLeaseUntilMs, sentAtMs + a.leaseMs);
    }
  }

  private onGridCall(call: ClusterCall, out: ClusterStep): void {
    if (call.incarnation < this.gridIncarnation) return this.st.answerGrid(out, call.reqId, { kind: 'refused', reason: `fenced: grid incarnation ${call.incarnation} is older than ${this.gridIncarnation}` });
    this.gridIncarnation = call.incarnation;
    const r = call.req;
    const job = this.st.jobs.get(r.jobId);
    switch (r.kind) {
      case 'submitJob': return this.onSubmit(call.reqId, r.jobId, r.units, r.gen, out);
      case 'restoreJob': {
        if (job?.restart) return this.st.answerGrid(out, call.reqId, { kind: 'busy', reason: `job ${r.jobId} is restarting here (${job.restart.reason})` });
        const target = job ?? this.newJob(r.jobId, r.units, new Map());
        target.units = [...r.units].sort();
        target.gridGen = r.gen;
        target.placement = new Map([...target.placement].filter(([u]) => target.units.includes(u)));
        const adopt = r.adopt.filter((a) => a.epoch !== null).map((a) => ({ store: a.fromCluster, epoch: a.epoch as bigint, units: a.units }));
        target.badEpochs.clear();
        if (r.epoch !== null) target.committed = target.committed.filter((e) => e <= (r.epoch as bigint));
        cancelRound(this.st, target, 'the grid restores the job', out);
        target.gridLeaseUntilMs = this.st.nowMs + this.gridLeaseMs;
        beginRestart(this.st, target, 'the grid restores the job', null, out, { epoch: r.epoch, adopt, answer: call.reqId });
        return;
      }
      case 'stopJob':
        if (job) {
          cancelRound(this.st, job, 'stopped by the grid', out);
          if (job.restart?.answer) this.st.answerGrid(out, job.restart.answer, { kind: 'refused', reason: 'stopped' });
          job.restart = null;
          job.state = job.allDoneAtMs !== null ? 'completed' : 'stopped';
          this.st.stopEverywhere(job, out);
        }
        return this.st.answerGrid(out, call.reqId, { kind: 'ok' });
      case 'prepare': return this.onGridPrepare(call.reqId, r.jobId, r.epoch, r.parentEpoch, out);
      case 'commit': {
        const s = job?.round.status();
        if (!job || s?.phase !== 'holding' || s.epoch !== r.epoch) return this.st.answerGrid(out, call.reqId, { kind: 'refused', reason: `no prepared round for epoch ${r.epoch} of job ${r.jobId}` });
        job.gridCommit = call.reqId;
        return roundStep(this.st, job, { kind: 'proceed', epoch: r.epoch }, out);
      }
      case 'abort':
        if (job && job.round.status().epoch === r.epoch && job.round.status().phase !== 'idle') roundStep(this.st, job, { kind: 'cancel', epoch: r.epoch, reason: 'the grid aborted the round' }, out);
        return this.st.answerGrid(out, call.reqId, { kind: 'ok' });
    }
  }

  private onSubmit(reqId: number, jobId: string, units: string[], gen: number, out: ClusterStep): void {
    const old = this.st.jobs.get(jobId);
    if (old && (old.state === 'running' || old.state === 'recovering' || old.state === 'starting')) return this.st.answerGrid(out, reqId, { kind: 'refused', reason: `job ${jobId} is already ${old.state}` });
    if (!old && this.st.jobs.size >= this.config.maxJobs) return this.st.answerGrid(out, reqId, { kind: 'refused', reason: `at most ${this.config.maxJobs} jobs` });
    const job = this.newJob(jobId, [...units].sort(), new Map());
    job.gridGen = gen;
    job.gridLeaseUntilMs = this.st.nowMs + this.gridLeaseMs;
    beginRestart(this.st, job, 'submitted', null, out, { epoch: null, adopt: [], answer: reqId });
  }

  private newJob(jobId: string, units: string[], placement: Map<string, string>): Job {
    const job: Job = {
      jobId, units, state: 'starting', placement, committed: [], badEpochs: new Set(),
      round: new RoundCoordinator(jobId, this.config.round, this.st.jobs.get(jobId)?.round.status().highestEpoch ?? 0n, this.config.mutants),
      restart: null, gridLeaseUntilMs: this.st.nowMs, gridPrepare: null, gridCommit: null, lastError: '', allDoneAtMs: null, needsFull: true, startGens: new Map(), gridGen: 0, doneAtCut: new Set(),
    };
    this.st.jobs.set(jobId, job);
    return job;
  }

  private onGridPrepare(reqId: number, jobId: string, epoch: bigint, parentEpoch: bigint | null, out: ClusterStep): void {
    const job = this.st.jobs.get(jobId);
    if (!job || job.state !== 'running' || job.restart) return this.st.answerGrid(out, reqId, { kind: 'refused', reason: `job ${jobId} is ${job?.state ?? 'unknown'} in cluster ${this.config.clusterId}` });
    const s = job.round.status();
    if (s.phase === 'holding' && s.epoch !== null && epoch > s.epoch) roundStep(this.st, job, { kind: 'cancel', epoch: s.epoch, reason: `superseded by grid epoch ${epoch}` }, out);
    if (job.round.status().phase !== 'idle') return this.st.answerGrid(out, reqId, { kind: 'refused', reason: `a round of job ${jobId} is already running` });
    if (epoch <= job.round.status().highestEpoch) return this.st.answerGrid(out, reqId, { kind: 'refused', reason: `stale grid epoch ${epoch}: this cluster is at ${job.round.status().highestEpoch}` });
    const full = parentEpoch === null || job.needsFull || !job.committed.includes(parentEpoch);
    job.gridPrepare = reqId;
    job.doneAtCut.clear();
    roundStep(this.st, job, {
      kind: 'start', roundId: `${jobId}-${epoch}`, jobId, epoch, parentEpoch: full ? null : parentEpoch,
      participants: this.st.nodesOf(job), full, holdAfterPrepare: true,
    }, out);
  }

  private onPersisted(what: ClusterPersist, error: string | null, out: ClusterStep): void {
    const job = this.st.jobs.get(what.jobId);
    if (!job) return;
    roundStep(this.st, job, error === null ? { kind: 'manifestWritten', epoch: what.epoch } : { kind: 'manifestFailed', epoch: what.epoch, reason: error }, out);
  }

  // ---- agents' answers -----------------------------------------------------------

  private onAgentAnswer(reqId: number, answer: AgentAnswer, out: ClusterStep, unreachable = false): void {
    const p = this.st.pending.get(reqId);
    if (!p) return;
    this.st.pending.delete(reqId);
    const job = this.st.jobs.get(p.jobId);
    if (!job) return;
    if (p.what === 'restart') {
      if (!job.restart?.waiting.delete(reqId)) return;
      return onRestartAnswer(this.st, job, p.node, answer, unreachable, out);
    }
    if (p.what !== 'round' || p.epoch === null) return;
    const epoch = p.epoch;
    const participant = p.node;
    if (answer.kind === 'prepared' && answer.done) job.doneAtCut.add(participant);
    if (answer.kind === 'prepared') return roundStep(this.st, job, { kind: 'prepared', participant, epoch, pages: answer.pages, bytes: answer.bytes, digest: '' }, out);
    if (answer.kind === 'durable') return roundStep(this.st, job, { kind: 'durable', participant, epoch, part: answer.part, digest: '' }, out);
    const reason = 'reason' in answer ? answer.reason : answer.kind;
    if (p.kind === 'prepare') roundStep(this.st, job, { kind: 'prepareFailed', participant, epoch, reason }, out);
    else if (p.kind === 'commit') roundStep(this.st, job, { kind: 'durableFailed', participant, epoch, reason }, out);
  }

  // ---- time ----------------------------------------------------------------------

  private onTime(out: ClusterStep): void {
    for (const job of this.st.jobs.values()) {
      // The grid's lease first: a cluster that wakes from a pause past it must not start anything more (C6).
      if (isLive(job) && this.st.nowMs >= job.gridLeaseUntilMs) {
        this.fence(job, out);
        continue;
      }
      if (job.round.nextDeadlineMs() !== null && this.st.nowMs >= job.round.nextDeadlineMs()!) roundStep(this.st, job, { kind: 'tick' }, out);
      if (job.restart?.phase === 'leaseWait') advanceRestart(this.st, job, out);
    }
    if (this.st.nowMs >= this.nextBeatMs) this.beatGrid(out);
  }

  /** The grid's lease lapsed: the grid may run the job elsewhere soon; stop it here (C6). */
  private fence(job: Job, out: ClusterStep): void {
    cancelRound(this.st, job, 'the grid lease lapsed', out);
    if (job.restart?.answer) this.st.answerGrid(out, job.restart.answer, { kind: 'refused', reason: 'fenced' });
    job.restart = null;
    job.state = 'fenced';
    job.lastError = `fenced: the grid's lease on job ${job.jobId} lapsed`;
    this.st.stopEverywhere(job, out);
  }

  private beatGrid(out: ClusterStep): void {
    this.beatSeq += 1;
    this.nextBeatMs = this.st.nowMs + this.config.heartbeatIntervalMs;
    const jobs = [...this.st.jobs.values()].map((j) => ({ jobId: j.jobId, state: this.shareState(j), gen: j.gridGen }));
    const room = this.st.capacities(null).filter((c) => this.st.nodes.get(c.nodeId)!.verdict === 'alive');
    const freeUnits = room.reduce((a, c) => a + Math.max(0, c.capacityUnits - c.placedUnits), 0);
    out.send.push({ to: 'grid', heartbeat: { member: this.config.clusterId, incarnation: this.config.incarnation, seq: this.beatSeq, sentAtMs: this.st.nowMs, jobs, freeUnits } });
  }

  private shareState(j: Job): MemberJobState {
    if (j.state === 'running' && j.allDoneAtMs !== null && j.round.status().phase === 'idle') return 'completed';
    if (j.state === 'starting' || j.state === 'recovering') return 'running';
    return j.state;
  }

  checkInvariants(): void {
    checkClusterInvariants(this.st);
  }
}
