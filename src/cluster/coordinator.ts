import { GridError, notFound } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { AgentClient } from '../wire/agent-client.js';
import type { TierRuntime } from '../wire/clients.js';
import { sleep } from '../runtime/timers.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import { MonitorDriver, type DetectorConfig, type VerdictChange, type Verdict } from '../detector/index.js';
import type { RoundConfig, RoundOutcome, StartInput } from '../protocol/core/round.js';
import { placeUnits, type NodeCapacity } from './core/placement.js';
import { ClusterJob, type ClusterJobState } from './cluster-job.js';
import { LeaseKeeper } from '../detector/lease-keeper.js';
import { leaseMarginMs } from '../detector/lease.js';
import { restoreGridJob, type GridRestore } from './job-restore.js';
import { rowOf, type JobTable } from './job-table.js';
import type { JobReport } from './core/job-end.js';
import { JobArming } from './job-arming.js';
import { isLive, JobRecoveries } from './job-recovery.js';
import { resumeJobs } from './job-resume.js';

// The cluster coordinator's shell: node registry and heartbeats (through the
// detector core), job placement, periodic rounds (ClusterJob), and recovery
// of a job when one of its nodes is declared failed: abort the round, stop
// the job's other units, move the failed node's units to one spare node, and
// restore every node of the job from the last committed epoch.
// The end of a job comes up on the agents' heartbeats (push, not poll): each
// beat carries the states of the agent's jobs, tagged with the gen of the
// start they belong to; an EndWatch per arming of a job judges them
// (core/job-end.ts), and the coordinator acts on its decisions.
// Leases: every job it starts is bound to the agents' leases, which each
// heartbeat answer renews; a node declared failed gets no more answers, and
// its units are run elsewhere only once its lease has surely lapsed. A
// grid-managed job holds a lease from the grid the same way (gridLeases).
// Here: the node registry, heartbeats, verdicts and leases, and job
// submission. In files of their own: arming a job, its periodic rounds and
// the watch for its end (job-arming.ts); recovery sequencing and the fence
// of a grid job (job-recovery.ts, steps in node-recovery.ts); taking jobs
// back from the job table after a restart (job-resume.ts); a grid restore
// (job-restore.ts).

export interface ClusterSettings {
  clusterId: string;
  incarnation: bigint;
  storeDir: string;
  detector: DetectorConfig;
  round: RoundConfig;
  defaultCheckpointIntervalMs: number;
  rpcTimeoutMs: number;
  /** How long an agent's job lease lasts (from its heartbeat's send). */
  agentLeaseMs: number;
}

export interface ClusterNode {
  nodeId: string;
  incarnation: bigint;
  address: string;
  capacityUnits: number;
  labels: Record<string, string>;
  verdict: Verdict;
  client: AgentClient;
  /** The last instant this coordinator vouched for the node's jobs (answer or start). */
  lastGrantMs: number;
}

export interface ClusterEvents {
  roundFinished(outcome: RoundOutcome): void;
  nodeVerdict(change: VerdictChange): void;
  recovered(jobId: string, ms: number, ok: boolean): void;
  jobFenced(jobId: string): void;
  // For Watch readers (watch-events.ts); metrics need none of these.
  nodeRegistered?(nodeId: string, incarnation: bigint, address: string): void;
  jobPlaced?(jobId: string, placement: ReadonlyMap<string, string>): void;
  jobState?(job: ClusterJob, from: ClusterJobState, to: ClusterJobState): void;
  roundStarted?(round: StartInput): void;
  recoveryStarted?(jobId: string, nodeId: string, reason: string): void;
}

export class ClusterCoordinator {
  readonly nodes = new Map<string, ClusterNode>();
  readonly jobs = new Map<string, ClusterJob>();
  readonly detector: MonitorDriver;
  failuresDetected = 0;
  /** Grid-managed jobs run here only while the grid renews their lease. */
  readonly gridLeases: LeaseKeeper;

  private readonly registered = new Map<string, Array<() => void>>();
  /** Called at every verdict change (see untilNotSuspected). */
  private readonly verdictWaiters = new Set<() => void>();
  /** Periodic rounds and the end watch of each armed job (job-arming.ts). */
  private readonly arming = new JobArming(this);
  /** One recovery of a job at a time, and fences (job-recovery.ts). */
  private readonly recoveryQueue = new JobRecoveries(this);

  constructor(
    readonly settings: ClusterSettings,
    readonly runtime: TierRuntime,
    readonly log: Logger,
    readonly events: ClusterEvents,
    private readonly table: JobTable | null = null,
  ) {
    this.detector = new MonitorDriver({
      config: settings.detector,
      clock: runtime.clock,
      timers: runtime.timers,
      onChange: (c) => this.onVerdict(c),
      // This process was stopped (SIGSTOP, GC, VM stall): its nodes' silence meanwhile is not theirs.
      onOwnPause: (p) => this.log.warn({ pausedMs: Math.round(p.toMs - p.fromMs) }, 'failure detector was paused with this process; its nodes get that time back'),
    });
    this.gridLeases = new LeaseKeeper(3_000, (jobId) => void this.fenceGridJob(jobId), runtime);
  }

  // ---- nodes ----

  registerNode(n: { nodeId: string; incarnation: bigint; address: string; capacityUnits: number; labels: Record<string, string> }): void {
    const old = this.nodes.get(n.nodeId);
    if (old && old.incarnation > n.incarnation) {
      throw new GridError('failed-precondition', `fenced: node ${n.nodeId} incarnation ${n.incarnation} is older than ${old.incarnation}`);
    }
    old?.client.close();
    this.nodes.set(n.nodeId, {
      ...n, verdict: 'alive', client: this.runtime.clients.agentClient(n.address, this.settings.rpcTimeoutMs),
      // Leases the old registration holds still count.
      lastGrantMs: old?.lastGrantMs ?? this.runtime.clock.nowMs(),
    });
    // The same incarnation back after a failed verdict (it was stopped or cut off): a fresh start,
    // since failed is final for an incarnation in the detector. Its jobs are being moved; no lease.
    if (old && old.incarnation === n.incarnation && old.verdict === 'failed') this.detector.unwatch(n.nodeId);
    this.detector.watch(n.nodeId, n.incarnation);
    for (const w of this.registered.get(n.nodeId)?.splice(0) ?? []) w();
    this.log.info({ node: n.nodeId, incarnation: String(n.incarnation), address: n.address, capacity: n.capacityUnits }, 'node registered');
    this.events.nodeRegistered?.(n.nodeId, n.incarnation, n.address);
    if (old && n.incarnation > old.incarnation) this.onAgentRestarted(n.nodeId);
  }

  /** A new incarnation of an agent lost the units it ran (they died with the old one): restore them where they were. */
  private onAgentRestarted(nodeId: string): void {
    for (const job of this.jobs.values()) {
      if (job.state === 'running' && isLive(this, job) && job.nodes().includes(nodeId) && !job.lostNodes.has(nodeId)) {
        this.recoverSoon(job, nodeId, false, `the agent on ${nodeId} restarted and lost the job`);
      }
    }
  }

  /**
   * A node's beat: the detector's input, the leases it renews, and the
   * states of the node's jobs (reports; full: they list every job the agent
   * has). Reports count only once the beat is accepted: one of an older
   * incarnation, or refused by the detector, says nothing.
   */
  heartbeat(nodeId: string, incarnation: bigint, seq: number, reports: readonly JobReport[] = [], full = false): { known: boolean; leasedJobs: string[] } {
    const node = this.nodes.get(nodeId);
    if (!node || node.incarnation !== incarnation || node.verdict === 'failed') return { known: false, leasedJobs: [] };
    if (this.detector.heartbeat(nodeId, incarnation, seq) !== null) return { known: false, leasedJobs: [] };
    const leasedJobs = this.leasedJobsOf(nodeId);
    // An answer naming jobs is a grant. (Not every answer: a node whose units are being moved still beats,
    // and its leases must lapse; counting those answers kept a recovery waiting forever. A start the node
    // takes late is counted by the start's own grant, at the call's end, failed or not.)
    if (leasedJobs.length > 0) node.lastGrantMs = this.runtime.clock.nowMs();
    this.arming.onJobReports(nodeId, reports, full);
    return { known: true, leasedJobs };
  }

  /**
   * A node's job states sent as soon as one changed, between its beats
   * (ReportJobs): judged as a beat's, but no beat (the detector and the
   * leases do not see it). A report of an unknown, older or failed
   * incarnation is not taken.
   */
  reportJobs(nodeId: string, incarnation: bigint, reports: readonly JobReport[]): { known: boolean } {
    const node = this.nodes.get(nodeId);
    if (!node || node.incarnation !== incarnation || node.verdict === 'failed') return { known: false };
    this.arming.onJobReports(nodeId, reports, true);
    return { known: true };
  }

  /** The jobs this node may keep running: placed there, not fenced, and (grid jobs) leased from the grid. */
  leasedJobsOf(nodeId: string): string[] {
    return [...this.jobs.values()]
      .filter((j) => (j.state === 'running' || j.state === 'recovering') && !j.lostNodes.has(nodeId) && j.nodes().includes(nodeId))
      .filter((j) => !j.gridManaged || this.gridLeases.leases.isBound(j.jobId))
      .map((j) => j.jobId);
  }

  /** When the node's leases have surely lapsed (its units are dead or fenced). */
  leaseSafeAt(nodeId: string): number {
    const node = this.nodes.get(nodeId);
    if (!node) return 0;
    return node.lastGrantMs + this.settings.agentLeaseMs + leaseMarginMs(this.settings.agentLeaseMs);
  }

  /** Resolves once none of these nodes is suspected (each is alive or failed), or after maxMs. */
  untilNotSuspected(nodeIds: readonly string[], maxMs: number): Promise<void> {
    const settled = () => nodeIds.every((n) => this.nodes.get(n)?.verdict !== 'suspected');
    if (settled()) return Promise.resolve();
    const { timers } = this.runtime;
    return new Promise((resolve) => {
      const done = () => {
        timers.clearTimer(timer);
        this.verdictWaiters.delete(check);
        resolve();
      };
      const check = () => {
        if (settled()) done();
      };
      const timer = timers.setTimer(done, maxMs);
      this.verdictWaiters.add(check);
    });
  }

  /** A start or restore call that returned: the node holds a fresh lease. */
  granted(nodeId: string): void {
    const node = this.nodes.get(nodeId);
    if (node) node.lastGrantMs = Math.max(node.lastGrantMs, this.runtime.clock.nowMs());
  }

  private onVerdict(change: VerdictChange): void {
    const node = this.nodes.get(change.peer);
    this.events.nodeVerdict(change);
    if (!node || node.incarnation !== change.incarnation) return;
    node.verdict = change.to;
    for (const w of [...this.verdictWaiters]) w();
    this.log.warn({ node: change.peer, from: change.from, to: change.to, phi: change.phi, silenceMs: change.silenceMs }, `node ${change.to}`);
    if (change.to === 'failed') {
      this.failuresDetected += 1;
      for (const job of this.jobs.values()) {
        if (job.nodes().includes(change.peer) && (job.state === 'running' || job.state === 'recovering')) {
          this.recoverSoon(job, change.peer, true, `node ${change.peer} declared failed by the detector`);
        }
      }
    }
  }

  capacities(): NodeCapacity[] {
    const placed = new Map<string, number>();
    for (const job of this.jobs.values()) {
      if (job.state === 'completed' || job.state === 'failed' || job.state === 'fenced' || job.replaced) continue;
      for (const node of job.placement.values()) placed.set(node, (placed.get(node) ?? 0) + 1);
    }
    return [...this.nodes.values()]
      .filter((n) => n.verdict === 'alive')
      .map((n) => ({ nodeId: n.nodeId, capacityUnits: n.capacityUnits, placedUnits: placed.get(n.nodeId) ?? 0 }));
  }

  // ---- jobs ----

  async submitJob(raw: JobSpec, gridManaged = false): Promise<ClusterJob> {
    if (this.jobs.has(raw.jobId) && this.jobs.get(raw.jobId)!.state !== 'completed') {
      throw new GridError('already-exists', `job ${raw.jobId} is already ${this.jobs.get(raw.jobId)!.state} in cluster ${this.settings.clusterId}`);
    }
    if (raw.units.length === 0) throw new GridError('invalid-argument', `job ${raw.jobId} has no units`);
    const spec = { ...raw, checkpointIntervalMs: raw.checkpointIntervalMs || this.settings.defaultCheckpointIntervalMs };
    const placement = placeUnits(spec.units.map((u) => u.unitId), this.capacities());
    const job = this.newJob(spec, placement, gridManaged);
    this.jobs.set(spec.jobId, job);
    if (gridManaged) this.gridLeases.bind(spec.jobId);
    for (const nodeId of job.nodes()) {
      const gen = this.nextStartGen();
      job.startGens.set(nodeId, gen);
      // Granted even if the call fails: the agent may have bound a lease before it did (a late call is refused there).
      await this.client(nodeId).startJob({ job: job.specFor(nodeId), leaseBound: true, fresh: false, gen }).finally(() => this.granted(nodeId));
    }
    this.arm(job);
    this.persist(job);
    this.log.info({ jobId: spec.jobId, placement: Object.fromEntries(placement) }, 'job placed and started');
    this.events.jobPlaced?.(spec.jobId, placement);
    return job;
  }

  newJob(spec: JobSpec, placement: Map<string, string>, gridManaged: boolean): ClusterJob {
    const job = new ClusterJob(spec, placement, this.settings.round, {
      clusterId: this.settings.clusterId,
      incarnation: this.settings.incarnation,
      storeDir: this.settings.storeDir,
      runtime: this.runtime,
      clientOf: (id) => this.nodes.get(id)?.client ?? null,
      log: this.log,
      onOutcome: (j, o) => {
        this.events.roundFinished(o);
        if (o.kind === 'committed') this.persist(j);
      },
      onState: (j, from, to) => this.events.jobState?.(j, from, to),
      onRoundStarted: (_j, r) => this.events.roundStarted?.(r),
    });
    job.gridManaged = gridManaged;
    return job;
  }

  /** Keeps the job table on disk current (off the round's critical path). */
  persist(job: ClusterJob): void {
    if (!this.table || this.jobs.get(job.jobId) !== job) return;
    this.table.save(rowOf(job)).catch((err: unknown) => this.log.error({ jobId: job.jobId, err: String(err) }, 'could not save the job table'));
  }

  /** A restarted coordinator takes its own jobs back from the job table (job-resume.ts). */
  resume(): void {
    resumeJobs(this, this.table, (nodes, deadlineMs) => this.untilRegistered(nodes, deadlineMs));
  }

  private async untilRegistered(nodes: readonly string[], deadlineMs: number): Promise<string[]> {
    await Promise.race([
      Promise.all(nodes.map((n) => this.nodes.has(n) ? Promise.resolve() : new Promise<void>((r) => this.registered.set(n, [...(this.registered.get(n) ?? []), r])))),
      sleep(this.runtime.timers, deadlineMs),
    ]);
    return nodes.filter((n) => !this.nodes.has(n));
  }

  job(jobId: string): ClusterJob {
    const job = this.jobs.get(jobId);
    if (!job) throw notFound(`unknown job ${JSON.stringify(jobId)} in cluster ${this.settings.clusterId}`);
    return job;
  }

  checkpointJob(jobId: string): Promise<RoundOutcome> {
    const job = this.job(jobId);
    if (job.state !== 'running' && job.state !== 'completed') {
      throw new GridError('failed-precondition', `job ${jobId} is ${job.state}`);
    }
    return job.checkpoint();
  }

  client(nodeId: string): AgentClient {
    const node = this.nodes.get(nodeId);
    if (!node) throw new GridError('unavailable', `node ${nodeId} is not registered`);
    return node.client;
  }

  // ---- arming (job-arming.ts) and recovery (job-recovery.ts) ----

  /** Periodic rounds, and a watch for the end of the job on every node. */
  arm(job: ClusterJob): void {
    this.arming.arm(job);
  }

  disarm(job: ClusterJob): void {
    this.arming.disarm(job);
  }

  /** Names each start sent to an agent (StartJob/Restore gen): this incarnation above, a count below, so no two starts share one (E1). */
  nextStartGen(): bigint {
    return this.arming.nextStartGen();
  }

  /**
   * Restores the job from its last committed epoch, one recovery of a job at
   * a time. move: the node is failed, its units go to a spare; otherwise
   * (its units were fenced, or its agent restarted) they stay where they are.
   */
  recoverSoon(job: ClusterJob, nodeId: string, move: boolean, reason: string): void {
    this.recoveryQueue.recoverSoon(job, nodeId, move, reason);
  }

  /** Stops the job's units on these nodes, best effort: a node gone or unreachable is its lease's business. */
  stopOn(jobId: string, nodes: readonly string[]): Promise<void> {
    return this.recoveryQueue.stopOn(jobId, nodes);
  }

  /** The grid's recovery after it lost a cluster (see job-restore.ts). */
  restoreGridJob(r: GridRestore): Promise<ClusterJob> {
    return restoreGridJob(this, r);
  }

  /** Replaces the job's record (a grid restore builds a new one). */
  setJob(job: ClusterJob): void {
    this.jobs.set(job.jobId, job);
  }

  /**
   * The grid stopped renewing this job's lease: the grid may be running its
   * units elsewhere by now. Stop them here; the agents' own leases lapse
   * anyway, since the job is no longer named in their heartbeat answers.
   */
  fenceGridJob(jobId: string): Promise<void> {
    return this.recoveryQueue.fenceGridJob(jobId);
  }

  shutdown(): void {
    this.gridLeases.stop();
    for (const job of this.jobs.values()) {
      this.disarm(job);
      job.stop();
    }
    this.detector.stop();
    for (const n of this.nodes.values()) n.client.close();
  }
}
