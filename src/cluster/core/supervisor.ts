import { Monitor, type VerdictChange, type Verdict } from '../../detector/monitor.js';
import { leaseMarginMs } from '../../detector/lease.js';
import { RoundCoordinator, type RoundReply, type RoundStep, type RoundInput } from '../../protocol/core/round.js';
import type { AgentAnswer, AgentRequest, ClusterAnswer, ClusterCall, Heartbeat, MemberJobState, PartRef, RestoreSource } from '../../protocol/messages.js';
import type { NodeCapacity } from './placement.js';
import { planRestart } from './restart-plan.js';
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

interface NodeEntry {
  nodeId: string;
  incarnation: bigint;
  capacityUnits: number;
  verdict: Verdict;
  lastGrantMs: number;
  /** Job states the node last reported (push, on its heartbeat). */
  reported: Map<string, MemberJobState>;
}

interface Restart {
  reason: string;
  attempt: number;
  phase: 'stopping' | 'leaseWait' | 'restoring';
  epoch: bigint | null;
  /** Nodes whose units move; they must be dead before the restore (C1). */
  lost: Set<string>;
  waiting: Set<number>;
  safeAtMs: number;
  /** A grid call answered when the restart ends. */
  answer: number | null;
  adopt: RestoreSource[];
}

interface Job {
  jobId: string;
  units: string[];
  state: ClusterJobState;
  placement: Map<string, string>;
  committed: bigint[];
  badEpochs: Set<bigint>;
  round: RoundCoordinator;
  restart: Restart | null;
  gridLeaseUntilMs: number;
  /** Grid calls waiting on the round: prepare answers prepared, commit answers committed. */
  gridPrepare: number | null;
  gridCommit: number | null;
  lastError: string;
  allDoneAtMs: number | null;
  /** The gen of the last start sent to each node (its reports must carry it) and of the grid's last submit or restore. */
  startGens: Map<string, number>;
  gridGen: number;
  /** Nodes whose PREPARED of the running round said every unit had exited. */
  doneAtCut: Set<string>;
  /** After any restart the next epoch is full: moved or adopted units' pages are in no epoch of this store's chain. */
  needsFull: boolean;
}

type Pending = { jobId: string; node: string; what: 'round' | 'restart' | 'stop'; epoch: bigint | null; kind: AgentRequest['kind'] };

export class ClusterSupervisor {
  private readonly nodes = new Map<string, NodeEntry>();
  private readonly jobs = new Map<string, Job>();
  private readonly monitor: Monitor;
  private readonly pending = new Map<number, Pending>();
  private nextReq = 1;
  private nowMs = 0;
  private nextBeatMs = 0;
  private beatSeq = 0;
  private gridIncarnation = 0n;
  private gridLeaseMs: number;
  failuresDetected = 0;

  constructor(private readonly config: ClusterSupervisorConfig) {
    this.monitor = new Monitor(config.detector);
    this.gridLeaseMs = config.gridLeaseMs;
  }

  private mutant(name: string): boolean {
    return this.config.mutants?.has(name) ?? false;
  }

  step(input: ClusterInput, nowMs: number): ClusterStep {
    if (nowMs < this.nowMs) throw new Error(`cluster time went back: ${nowMs} < ${this.nowMs}`);
    this.nowMs = nowMs;
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
    for (const j of this.jobs.values()) {
      const r = j.round.nextDeadlineMs();
      if (r !== null) at = Math.min(at, r);
      // Past its lease wait, a restart waits for a verdict (a heartbeat or a detector deadline), not a time.
      if (j.restart?.phase === 'leaseWait' && j.restart.safeAtMs > this.nowMs) at = Math.min(at, j.restart.safeAtMs);
      if (j.state === 'running' || j.state === 'recovering') at = Math.min(at, j.gridLeaseUntilMs);
    }
    return at;
  }

  jobState(jobId: string): ClusterJobState | null {
    return this.jobs.get(jobId)?.state ?? null;
  }

  jobView(jobId: string): { state: ClusterJobState; placement: Map<string, string>; committed: bigint[] } | null {
    const j = this.jobs.get(jobId);
    return j ? { state: j.state, placement: new Map(j.placement), committed: [...j.committed] } : null;
  }

  // ---- membership --------------------------------------------------------------

  private onAgentBeat(hb: Heartbeat, out: ClusterStep): void {
    let node = this.nodes.get(hb.member);
    if (node && hb.incarnation < node.incarnation) return this.beatReply(out, hb, false, []);
    if (!node || hb.incarnation > node.incarnation || node.verdict === 'failed') {
      const restarted = node !== undefined && hb.incarnation > node.incarnation;
      const old = node;
      node = { nodeId: hb.member, incarnation: hb.incarnation, capacityUnits: hb.freeUnits, verdict: 'alive', lastGrantMs: old?.lastGrantMs ?? this.nowMs, reported: new Map() };
      this.nodes.set(hb.member, node);
      if (old && old.incarnation === hb.incarnation) this.monitor.step({ kind: 'unwatch', peer: hb.member }, this.nowMs);
      this.verdicts(this.monitor.step({ kind: 'watch', peer: hb.member, incarnation: hb.incarnation }, this.nowMs).changes, out);
      // A new incarnation lost the units it ran: their jobs restart (in place, the node is back).
      if (restarted) for (const j of this.jobsOn(hb.member)) this.beginRestart(j, `the agent on ${hb.member} restarted`, null, out);
    }
    const r = this.monitor.step({ kind: 'heartbeat', peer: hb.member, incarnation: hb.incarnation, sentSeq: hb.seq }, this.nowMs);
    this.verdicts(r.changes, out);
    if (r.ignored !== null || node.verdict === 'failed') return this.beatReply(out, hb, false, []);
    for (const { jobId, state, gen } of hb.jobs) if (this.jobs.get(jobId)?.startGens.get(hb.member) === gen) node.reported.set(jobId, state);
    const leased = this.leasedOn(hb.member);
    // max: a start still in flight may have set a later bound (send + deadline) than this answer (C1).
    // Every answer is a grant: a start the node takes later binds a lease no longer than its newest answered beat covers (P4).
    node.lastGrantMs = Math.max(node.lastGrantMs, this.nowMs);
    this.beatReply(out, hb, true, leased);
    for (const { jobId, state, gen } of hb.jobs) if (this.jobs.get(jobId)?.startGens.get(hb.member) === gen) this.onReported(hb.member, jobId, state, out);
  }

  private beatReply(out: ClusterStep, hb: Heartbeat, known: boolean, leasedJobs: string[]): void {
    out.reply.push({ to: hb.member, kind: 'beat', seq: hb.seq, answer: { known, leasedJobs, leaseMs: this.config.agentLeaseMs } });
  }

  /** Jobs a node may keep running: placed there, running, and leased from the grid. */
  private leasedOn(nodeId: string): string[] {
    return [...this.jobs.values()]
      .filter((j) => isLive(j) && [...j.placement.values()].includes(nodeId) && !j.restart?.lost.has(nodeId))
      .map((j) => j.jobId).sort();
  }

  private verdicts(changes: VerdictChange[], out: ClusterStep): void {
    for (const c of changes) {
      const node = this.nodes.get(c.peer);
      if (!node || node.incarnation !== c.incarnation) continue;
      node.verdict = c.to;
      if (c.to !== 'failed') continue;
      this.failuresDetected += 1;
      for (const j of this.jobsOn(c.peer)) this.beginRestart(j, `node ${c.peer} declared failed`, c.peer, out);
    }
  }

  private jobsOn(nodeId: string): Job[] {
    return [...this.jobs.values()].filter((j) => isLive(j) && [...j.placement.values()].includes(nodeId));
  }

  /** A node's report on a job: fenced units restart in place; completion is noted. */
  private onReported(nodeId: string, jobId: string, state: MemberJobState, out: ClusterStep): void {
    const job = this.jobs.get(jobId);
    if (!job || job.state !== 'running' || ![...job.placement.values()].includes(nodeId)) return;
    if (state === 'fenced' || state === 'failed' || state === 'stopped') {
      this.beginRestart(job, `the units on ${nodeId} were ${state}`, null, out);
      return;
    }
    if (job.allDoneAtMs === null && this.nodesOf(job).every((n) => this.nodes.get(n)?.reported.get(jobId) === 'completed')) {
      job.allDoneAtMs = this.nowMs;
    }
  }

  // ---- the grid ----------------------------------------------------------------

  private onGridBeatAnswer(sentAtMs: number, a: { known: boolean; leasedJobs: string[]; leaseMs: number }): void {
    if (!a.known) {
      this.nextBeatMs = this.nowMs;
      return;
    }
    this.gridLeaseMs = a.leaseMs;
    for (const id of a.leasedJobs) {
      const j = this.jobs.get(id);
      if (j) j.gridLeaseUntilMs = Math.max(j.gridLeaseUntilMs, sentAtMs + a.leaseMs);
    }
  }

  private onGridCall(call: ClusterCall, out: ClusterStep): void {
    if (call.incarnation < this.gridIncarnation) return this.answerGrid(out, call.reqId, { kind: 'refused', reason: `fenced: grid incarnation ${call.incarnation} is older than ${this.gridIncarnation}` });
    this.gridIncarnation = call.incarnation;
    const r = call.req;
    const job = this.jobs.get(r.jobId);
    switch (r.kind) {
      case 'submitJob': return this.onSubmit(call.reqId, r.jobId, r.units, r.gen, out);
      case 'restoreJob': {
        if (job?.restart) return this.answerGrid(out, call.reqId, { kind: 'busy', reason: `job ${r.jobId} is restarting here (${job.restart.reason})` });
        const target = job ?? this.newJob(r.jobId, r.units, new Map());
        target.units = [...r.units].sort();
        target.gridGen = r.gen;
        target.placement = new Map([...target.placement].filter(([u]) => target.units.includes(u)));
        const adopt = r.adopt.filter((a) => a.epoch !== null).map((a) => ({ store: a.fromCluster, epoch: a.epoch as bigint, units: a.units }));
        target.badEpochs.clear();
        if (r.epoch !== null) target.committed = target.committed.filter((e) => e <= (r.epoch as bigint));
        this.cancelRound(target, 'the grid restores the job', out);
        target.gridLeaseUntilMs = this.nowMs + this.gridLeaseMs;
        this.beginRestart(target, 'the grid restores the job', null, out, { epoch: r.epoch, adopt, answer: call.reqId });
        return;
      }
      case 'stopJob':
        if (job) {
          this.cancelRound(job, 'stopped by the grid', out);
          if (job.restart?.answer) this.answerGrid(out, job.restart.answer, { kind: 'refused', reason: 'stopped' });
          job.restart = null;
          job.state = job.allDoneAtMs !== null ? 'completed' : 'stopped';
          this.stopEverywhere(job, out);
        }
        return this.answerGrid(out, call.reqId, { kind: 'ok' });
      case 'prepare': return this.onGridPrepare(call.reqId, r.jobId, r.epoch, r.parentEpoch, out);
      case 'commit': {
        const s = job?.round.status();
        if (!job || s?.phase !== 'holding' || s.epoch !== r.epoch) return this.answerGrid(out, call.reqId, { kind: 'refused', reason: `no prepared round for epoch ${r.epoch} of job ${r.jobId}` });
        job.gridCommit = call.reqId;
        return this.roundStep(job, { kind: 'proceed', epoch: r.epoch }, out);
      }
      case 'abort':
        if (job && job.round.status().epoch === r.epoch && job.round.status().phase !== 'idle') this.roundStep(job, { kind: 'cancel', epoch: r.epoch, reason: 'the grid aborted the round' }, out);
        return this.answerGrid(out, call.reqId, { kind: 'ok' });
    }
  }

  private onSubmit(reqId: number, jobId: string, units: string[], gen: number, out: ClusterStep): void {
    const old = this.jobs.get(jobId);
    if (old && (old.state === 'running' || old.state === 'recovering' || old.state === 'starting')) return this.answerGrid(out, reqId, { kind: 'refused', reason: `job ${jobId} is already ${old.state}` });
    if (!old && this.jobs.size >= this.config.maxJobs) return this.answerGrid(out, reqId, { kind: 'refused', reason: `at most ${this.config.maxJobs} jobs` });
    const job = this.newJob(jobId, [...units].sort(), new Map());
    job.gridGen = gen;
    job.gridLeaseUntilMs = this.nowMs + this.gridLeaseMs;
    this.beginRestart(job, 'submitted', null, out, { epoch: null, adopt: [], answer: reqId });
  }

  private newJob(jobId: string, units: string[], placement: Map<string, string>): Job {
    const job: Job = {
      jobId, units, state: 'starting', placement, committed: [], badEpochs: new Set(),
      round: new RoundCoordinator(jobId, this.config.round, this.jobs.get(jobId)?.round.status().highestEpoch ?? 0n, this.config.mutants),
      restart: null, gridLeaseUntilMs: this.nowMs, gridPrepare: null, gridCommit: null, lastError: '', allDoneAtMs: null, needsFull: true, startGens: new Map(), gridGen: 0, doneAtCut: new Set(),
    };
    this.jobs.set(jobId, job);
    return job;
  }

  private onGridPrepare(reqId: number, jobId: string, epoch: bigint, parentEpoch: bigint | null, out: ClusterStep): void {
    const job = this.jobs.get(jobId);
    if (!job || job.state !== 'running' || job.restart) return this.answerGrid(out, reqId, { kind: 'refused', reason: `job ${jobId} is ${job?.state ?? 'unknown'} in cluster ${this.config.clusterId}` });
    const s = job.round.status();
    if (s.phase === 'holding' && s.epoch !== null && epoch > s.epoch) this.roundStep(job, { kind: 'cancel', epoch: s.epoch, reason: `superseded by grid epoch ${epoch}` }, out);
    if (job.round.status().phase !== 'idle') return this.answerGrid(out, reqId, { kind: 'refused', reason: `a round of job ${jobId} is already running` });
    if (epoch <= job.round.status().highestEpoch) return this.answerGrid(out, reqId, { kind: 'refused', reason: `stale grid epoch ${epoch}: this cluster is at ${job.round.status().highestEpoch}` });
    const full = parentEpoch === null || job.needsFull || !job.committed.includes(parentEpoch);
    job.gridPrepare = reqId;
    job.doneAtCut.clear();
    this.roundStep(job, {
      kind: 'start', roundId: `${jobId}-${epoch}`, jobId, epoch, parentEpoch: full ? null : parentEpoch,
      participants: this.nodesOf(job), full, holdAfterPrepare: true,
    }, out);
  }

  private answerGrid(out: ClusterStep, reqId: number, answer: ClusterAnswer): void {
    out.reply.push({ to: 'grid', kind: 'answer', reqId, answer });
  }

  // ---- rounds ------------------------------------------------------------------

  private roundStep(job: Job, input: RoundInput, out: ClusterStep): void {
    this.applyRound(job, job.round.step(input, this.nowMs), out);
  }

  private applyRound(job: Job, s: RoundStep, out: ClusterStep): void {
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
      this.callAgent(out, a.to, req, job.jobId, 'round', a.epoch);
    }
    if (s.reply) this.onRoundReply(job, s.reply, out);
  }

  private onRoundReply(job: Job, r: RoundReply, out: ClusterStep): void {
    if (r.kind === 'prepareDone') {
      if (job.gridPrepare !== null) this.answerGrid(out, job.gridPrepare, { kind: 'prepared', pages: r.pages, bytes: r.bytes, done: this.nodesOf(job).every((n) => job.doneAtCut.has(n)) });
      job.gridPrepare = null;
      return;
    }
    if (r.kind === 'committed') {
      job.committed = [...job.committed, r.epoch].slice(-this.config.keepEpochs);
      if (r.full) job.needsFull = false;
      if (job.gridCommit !== null) this.answerGrid(out, job.gridCommit, { kind: 'committed', epoch: r.epoch });
    } else {
      job.lastError = `round ${r.epoch} aborted in ${r.phase}: ${r.reason}`;
      for (const id of [job.gridPrepare, job.gridCommit]) if (id !== null) this.answerGrid(out, id, { kind: 'refused', reason: job.lastError });
    }
    job.gridPrepare = null;
    job.gridCommit = null;
  }

  private cancelRound(job: Job, reason: string, out: ClusterStep): void {
    const s = job.round.status();
    if (s.phase !== 'idle' && s.epoch !== null) this.roundStep(job, { kind: 'cancel', epoch: s.epoch, reason }, out);
  }

  private onPersisted(what: ClusterPersist, error: string | null, out: ClusterStep): void {
    const job = this.jobs.get(what.jobId);
    if (!job) return;
    this.roundStep(job, error === null ? { kind: 'manifestWritten', epoch: what.epoch } : { kind: 'manifestFailed', epoch: what.epoch, reason: error }, out);
  }

  // ---- restarts: start, recovery, rollback --------------------------------------

  private beginRestart(job: Job, reason: string, lostNode: string | null, out: ClusterStep, grid?: { epoch: bigint | null; adopt: RestoreSource[]; answer: number }): void {
    if (job.state === 'fenced' || job.state === 'completed' || job.state === 'stopped' || job.state === 'failed') {
      if (!grid) return;
    }
    if (lostNode !== null) this.roundStep(job, { kind: 'participantFailed', participant: lostNode, reason }, out);
    this.cancelRound(job, reason, out);
    const prev = job.restart;
    const lost = new Set(prev?.lost ?? []);
    if (lostNode !== null) lost.add(lostNode);
    const epoch = grid ? grid.epoch : prev ? prev.epoch : (job.committed.at(-1) ?? null);
    job.state = grid?.epoch === null && !prev && job.committed.length === 0 && reason === 'submitted' ? 'starting' : 'recovering';
    job.allDoneAtMs = null;
    job.restart = {
      reason, attempt: (prev?.attempt ?? 0) + 1, phase: 'stopping', epoch, lost, waiting: new Set(), safeAtMs: 0,
      answer: grid?.answer ?? prev?.answer ?? null, adopt: grid?.adopt ?? prev?.adopt ?? [],
    };
    if (job.restart.attempt > this.config.maxRecoveryAttempts) return this.failJob(job, `${reason}: gave up after ${this.config.maxRecoveryAttempts} attempts`, out);
    for (const n of this.nodesOf(job).filter((n) => !lost.has(n))) {
      job.restart.waiting.add(this.callAgent(out, n, { kind: 'stopJob', jobId: job.jobId, gen: this.nextReq }, job.jobId, 'restart', null));
    }
    this.advanceRestart(job, out);
  }

  private advanceRestart(job: Job, out: ClusterStep): void {
    const r = job.restart;
    if (!r || r.waiting.size > 0) return;
    if (r.phase === 'stopping') {
      r.phase = 'leaseWait';
      const margin = leaseMarginMs(this.config.agentLeaseMs);
      r.safeAtMs = this.mutant('restore-before-lease-lapse') ? this.nowMs
        : Math.max(this.nowMs, ...[...r.lost].map((n) => (this.nodes.get(n)?.lastGrantMs ?? 0) + this.config.agentLeaseMs + margin));
    }
    if (r.phase === 'leaseWait') {
      if (this.nowMs < r.safeAtMs) return;
      this.restore(job, out);
      return;
    }
    if (r.phase === 'restoring') this.finishRestart(job, out);
  }

  private restore(job: Job, out: ClusterStep): void {
    const r = job.restart!;
    // A suspected node of the job may still run its units under a lease no one waited out: wait for its verdict (C1).
    if (this.nodesOf(job).some((n) => !r.lost.has(n) && this.nodes.get(n)?.verdict === 'suspected')) return;
    let placement: Map<string, string>;
    try {
      placement = planRestart({
        units: job.units, placement: job.placement, lost: r.lost, room: this.capacities(job),
        usable: (n) => this.nodes.get(n)?.verdict === 'alive' && !r.lost.has(n),
      });
    } catch (err) {
      return this.failJob(job, `${r.reason}: ${err instanceof Error ? err.message : String(err)}`, out);
    }
    job.placement = placement;
    r.phase = 'restoring';
    for (const node of this.nodesOf(job)) {
      const units = job.units.filter((u) => placement.get(u) === node);
      const sources: RestoreSource[] = [];
      const own = units.filter((u) => !r.adopt.some((a) => a.units.includes(u)));
      if (r.epoch !== null && own.length > 0) sources.push({ store: this.config.clusterId, epoch: r.epoch, units: own });
      for (const a of r.adopt) {
        const mine = a.units.filter((u) => units.includes(u));
        if (mine.length > 0) sources.push({ store: a.store, epoch: a.epoch, units: mine });
      }
      const gen = this.nextReq;
      job.startGens.set(node, gen);
      for (const n of this.nodes.values()) n.reported.delete(job.jobId);
      r.waiting.add(this.callAgent(out, node, { kind: 'startJob', jobId: job.jobId, units, sources, leaseMs: this.config.agentLeaseMs, gen }, job.jobId, 'restart', null));
      const entry = this.nodes.get(node);
      if (entry) entry.lastGrantMs = Math.max(entry.lastGrantMs, this.nowMs + this.config.callTimeoutMs);
    }
  }

  /** Free room of each registered node, not counting this job's own units. */
  private capacities(except: Job | null): NodeCapacity[] {
    const placed = new Map<string, number>();
    for (const j of this.jobs.values()) {
      if (j === except || !isLive(j)) continue;
      for (const n of j.placement.values()) placed.set(n, (placed.get(n) ?? 0) + 1);
    }
    return [...this.nodes.values()].map((n) => ({ nodeId: n.nodeId, capacityUnits: n.capacityUnits, placedUnits: placed.get(n.nodeId) ?? 0 }));
  }

  private finishRestart(job: Job, out: ClusterStep): void {
    const r = job.restart!;
    job.restart = null;
    job.state = 'running';
    job.needsFull = true;
    job.lastError = `restarted: ${r.reason}`;
    if (r.epoch !== null) job.committed = job.committed.filter((e) => e <= (r.epoch as bigint));
    if (r.answer !== null) this.answerGrid(out, r.answer, { kind: 'ok' });
  }

  private onRestartAnswer(job: Job, node: string, answer: AgentAnswer, unreachable: boolean, out: ClusterStep): void {
    const r = job.restart!;
    if (r.phase !== 'restoring' || answer.kind === 'ok') return this.advanceRestart(job, out);
    if (answer.kind === 'corrupt') {
      // Walk back: every node of the job restarts from the newest intact epoch below (§3.6).
      job.badEpochs.add(answer.epoch);
      const older = job.committed.filter((e) => e < answer.epoch && !job.badEpochs.has(e)).at(-1) ?? null;
      if (answer.store === this.config.clusterId && !this.mutant('no-walk-back')) {
        // Past the oldest intact epoch the units start anew: the job runs again from its beginning.
        r.epoch = older;
        return this.beginRestart(job, `epoch ${answer.epoch} is damaged (${answer.reason}); walking back to ${older ?? 'a fresh start'}`, null, out);
      }
      // Another cluster's store: the grid chose that epoch, so the grid walks back (its line, for every cluster).
      if (r.answer !== null) {
        this.answerGrid(out, r.answer, { kind: 'corrupt', store: answer.store, epoch: answer.epoch, reason: answer.reason });
        r.answer = null;
      }
      return this.failJob(job, `restore from ${answer.store} epoch ${answer.epoch} failed: ${answer.reason}`, out);
    }
    // The target died or refused: one more lost node, and go round again (never fail while room remains).
    const entry = this.nodes.get(node);
    const dead = unreachable || entry?.verdict !== 'alive';
    const lost = dead && !this.mutant('restore-onto-dead-node') ? node : null;
    if (!lost && this.mutant('restore-onto-dead-node')) return this.failJob(job, `restore on ${node} failed: ${'reason' in answer ? answer.reason : answer.kind}`, out);
    this.beginRestart(job, `restore on ${node} failed: ${'reason' in answer ? answer.reason : answer.kind}`, lost, out);
  }

  private failJob(job: Job, reason: string, out: ClusterStep): void {
    this.cancelRound(job, reason, out);
    if (job.restart?.answer) this.answerGrid(out, job.restart.answer, { kind: 'refused', reason });
    job.restart = null;
    job.state = 'failed';
    job.lastError = reason;
    this.stopEverywhere(job, out);
  }

  // ---- agent calls ---------------------------------------------------------------

  private callAgent(out: ClusterStep, node: string, req: AgentRequest, jobId: string, what: Pending['what'], epoch: bigint | null): number {
    const reqId = this.nextReq++;
    this.pending.set(reqId, { jobId, node, what, epoch, kind: req.kind });
    out.send.push({ to: node, call: { reqId, from: this.config.clusterId, incarnation: this.config.incarnation, req } });
    return reqId;
  }

  private onAgentAnswer(reqId: number, answer: AgentAnswer, out: ClusterStep, unreachable = false): void {
    const p = this.pending.get(reqId);
    if (!p) return;
    this.pending.delete(reqId);
    const job = this.jobs.get(p.jobId);
    if (!job) return;
    if (p.what === 'restart') {
      if (!job.restart?.waiting.delete(reqId)) return;
      return this.onRestartAnswer(job, p.node, answer, unreachable, out);
    }
    if (p.what !== 'round' || p.epoch === null) return;
    const epoch = p.epoch;
    const participant = p.node;
    if (answer.kind === 'prepared' && answer.done) job.doneAtCut.add(participant);
    if (answer.kind === 'prepared') return this.roundStep(job, { kind: 'prepared', participant, epoch, pages: answer.pages, bytes: answer.bytes, digest: '' }, out);
    if (answer.kind === 'durable') return this.roundStep(job, { kind: 'durable', participant, epoch, part: answer.part, digest: '' }, out);
    const reason = 'reason' in answer ? answer.reason : answer.kind;
    if (p.kind === 'prepare') this.roundStep(job, { kind: 'prepareFailed', participant, epoch, reason }, out);
    else if (p.kind === 'commit') this.roundStep(job, { kind: 'durableFailed', participant, epoch, reason }, out);
  }

  // ---- time ----------------------------------------------------------------------

  private onTime(out: ClusterStep): void {
    for (const job of this.jobs.values()) {
      // The grid's lease first: a cluster that wakes from a pause past it must not start anything more (C6).
      if (isLive(job) && this.nowMs >= job.gridLeaseUntilMs) {
        this.fence(job, out);
        continue;
      }
      if (job.round.nextDeadlineMs() !== null && this.nowMs >= job.round.nextDeadlineMs()!) this.roundStep(job, { kind: 'tick' }, out);
      if (job.restart?.phase === 'leaseWait') this.advanceRestart(job, out);
    }
    if (this.nowMs >= this.nextBeatMs) this.beatGrid(out);
  }

  /** The grid's lease lapsed: the grid may run the job elsewhere soon; stop it here (C6). */
  private fence(job: Job, out: ClusterStep): void {
    this.cancelRound(job, 'the grid lease lapsed', out);
    if (job.restart?.answer) this.answerGrid(out, job.restart.answer, { kind: 'refused', reason: 'fenced' });
    job.restart = null;
    job.state = 'fenced';
    job.lastError = `fenced: the grid's lease on job ${job.jobId} lapsed`;
    this.stopEverywhere(job, out);
  }

  private beatGrid(out: ClusterStep): void {
    this.beatSeq += 1;
    this.nextBeatMs = this.nowMs + this.config.heartbeatIntervalMs;
    const jobs = [...this.jobs.values()].map((j) => ({ jobId: j.jobId, state: this.shareState(j), gen: j.gridGen }));
    const room = this.capacities(null).filter((c) => this.nodes.get(c.nodeId)!.verdict === 'alive');
    const freeUnits = room.reduce((a, c) => a + Math.max(0, c.capacityUnits - c.placedUnits), 0);
    out.send.push({ to: 'grid', heartbeat: { member: this.config.clusterId, incarnation: this.config.incarnation, seq: this.beatSeq, sentAtMs: this.nowMs, jobs, freeUnits } });
  }

  private shareState(j: Job): MemberJobState {
    if (j.state === 'running' && j.allDoneAtMs !== null && j.round.status().phase === 'idle') return 'completed';
    if (j.state === 'starting' || j.state === 'recovering') return 'running';
    return j.state;
  }

  /** Best effort: a node that misses it is its lease's business. */
  private stopEverywhere(job: Job, out: ClusterStep): void {
    for (const n of this.nodesOf(job)) this.callAgent(out, n, { kind: 'stopJob', jobId: job.jobId, gen: this.nextReq }, job.jobId, 'stop', null);
  }

  private nodesOf(job: Job): string[] {
    return [...new Set(job.placement.values())].sort();
  }

  checkInvariants(): void {
    const fail = (m: string): never => { throw new Error(`cluster ${this.config.clusterId}: ${m}`); };
    if (this.jobs.size > this.config.maxJobs) fail('C7: too many jobs');
    for (const j of this.jobs.values()) {
      j.round.checkInvariants();
      if (j.committed.length > this.config.keepEpochs) fail(`C7: job ${j.jobId} remembers too many epochs`);
      if (j.restart && j.round.status().phase !== 'idle') fail(`C4: job ${j.jobId} runs a round during a restart`);
      for (const n of j.placement.values()) if (!this.nodes.has(n)) fail(`C2: job ${j.jobId} placed on unregistered node ${n}`);
      if (isLive(j) && this.nowMs > j.gridLeaseUntilMs) fail(`C6: job ${j.jobId} is ${j.state} past its grid lease`);
      if (j.restart?.phase === 'restoring' && !this.mutant('restore-before-lease-lapse')) {
        for (const n of j.restart.lost) {
          const e = this.nodes.get(n);
          if (e && this.nowMs < e.lastGrantMs + this.config.agentLeaseMs && [...j.placement.values()].includes(n)) fail(`C1: job ${j.jobId} restores while lost node ${n} may hold a lease`);
        }
      }
    }
  }
}

function isLive(j: Job): boolean {
  return j.state === 'running' || j.state === 'recovering' || j.state === 'starting';
}
