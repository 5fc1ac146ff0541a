import { performance } from 'node:perf_hooks';
import { GridError, notFound } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { AgentClient } from '../node/agent-client.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import { MonitorDriver, type DetectorConfig, type VerdictChange, type Verdict } from '../detector/index.js';
import type { RoundConfig, RoundOutcome } from './core/round.js';
import { placeUnits, moveFailedNode, type NodeCapacity } from './core/placement.js';
import { ClusterJob } from './cluster-job.js';

// The cluster coordinator's shell: node registry and heartbeats (through the
// detector core), job placement, periodic rounds (ClusterJob), and recovery
// of a job when one of its nodes is declared failed: abort the round, stop
// the job's other units, move the failed node's units to one spare node, and
// restore every node of the job from the last committed epoch.

export interface ClusterSettings {
  clusterId: string;
  incarnation: bigint;
  storeDir: string;
  detector: DetectorConfig;
  round: RoundConfig;
  defaultCheckpointIntervalMs: number;
  rpcTimeoutMs: number;
}

export interface ClusterNode {
  nodeId: string;
  incarnation: bigint;
  address: string;
  capacityUnits: number;
  labels: Record<string, string>;
  verdict: Verdict;
  client: AgentClient;
}

export interface ClusterEvents {
  roundFinished(outcome: RoundOutcome): void;
  nodeVerdict(change: VerdictChange): void;
  recovered(jobId: string, ms: number, ok: boolean): void;
}

export class ClusterCoordinator {
  readonly nodes = new Map<string, ClusterNode>();
  readonly jobs = new Map<string, ClusterJob>();
  readonly detector: MonitorDriver;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly generation = new Map<string, number>();
  failuresDetected = 0;

  constructor(readonly settings: ClusterSettings, private readonly log: Logger, private readonly events: ClusterEvents) {
    this.detector = new MonitorDriver({ config: settings.detector, onChange: (c) => this.onVerdict(c) });
  }

  // ---- nodes ----

  registerNode(n: { nodeId: string; incarnation: bigint; address: string; capacityUnits: number; labels: Record<string, string> }): void {
    const old = this.nodes.get(n.nodeId);
    if (old && old.incarnation > n.incarnation) {
      throw new GridError('failed-precondition', `fenced: node ${n.nodeId} incarnation ${n.incarnation} is older than ${old.incarnation}`);
    }
    old?.client.close();
    this.nodes.set(n.nodeId, { ...n, verdict: 'alive', client: new AgentClient(n.address, this.settings.rpcTimeoutMs) });
    this.detector.watch(n.nodeId, n.incarnation);
    this.log.info({ node: n.nodeId, incarnation: String(n.incarnation), address: n.address, capacity: n.capacityUnits }, 'node registered');
  }

  heartbeat(nodeId: string, incarnation: bigint, seq: number): boolean {
    const node = this.nodes.get(nodeId);
    if (!node || node.incarnation !== incarnation || node.verdict === 'failed') return false;
    return this.detector.heartbeat(nodeId, incarnation, seq) === null;
  }

  private onVerdict(change: VerdictChange): void {
    const node = this.nodes.get(change.peer);
    this.events.nodeVerdict(change);
    if (!node || node.incarnation !== change.incarnation) return;
    node.verdict = change.to;
    this.log.warn({ node: change.peer, from: change.from, to: change.to, phi: change.phi, silenceMs: change.silenceMs }, `node ${change.to}`);
    if (change.to === 'failed') {
      this.failuresDetected += 1;
      for (const job of this.jobs.values()) {
        if (job.nodes().includes(change.peer) && (job.state === 'running' || job.state === 'recovering')) void this.recover(job, change.peer);
      }
    }
  }

  private capacities(): NodeCapacity[] {
    const placed = new Map<string, number>();
    for (const job of this.jobs.values()) {
      if (job.state === 'completed' || job.state === 'failed') continue;
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
    const job = new ClusterJob(spec, placement, this.settings.round, {
      clusterId: this.settings.clusterId,
      incarnation: this.settings.incarnation,
      storeDir: this.settings.storeDir,
      clientOf: (id) => this.nodes.get(id)?.client ?? null,
      log: this.log,
      onOutcome: (_j, o) => this.events.roundFinished(o),
    });
    job.gridManaged = gridManaged;
    this.jobs.set(spec.jobId, job);
    for (const nodeId of job.nodes()) await this.client(nodeId).startJob({ job: job.specFor(nodeId) });
    this.arm(job);
    this.log.info({ jobId: spec.jobId, placement: Object.fromEntries(placement) }, 'job placed and started');
    return job;
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

  private client(nodeId: string): AgentClient {
    const node = this.nodes.get(nodeId);
    if (!node) throw new GridError('unavailable', `node ${nodeId} is not registered`);
    return node.client;
  }

  /** Periodic rounds, and a watch for the end of the job on every node. */
  private arm(job: ClusterJob): void {
    this.disarm(job);
    const every = job.gridManaged ? 0 : job.spec.checkpointIntervalMs;
    if (every > 0) {
      this.timers.set(job.jobId, setInterval(() => {
        if (job.state !== 'running' || job.round.status().phase !== 'idle') return;
        job.checkpoint().catch((err: unknown) => this.log.warn({ jobId: job.jobId, err: String(err) }, 'round not started'));
      }, every));
    }
    const gen = (this.generation.get(job.jobId) ?? 0) + 1;
    this.generation.set(job.jobId, gen);
    void this.watchCompletion(job, gen);
  }

  private disarm(job: ClusterJob): void {
    const t = this.timers.get(job.jobId);
    if (t) clearInterval(t);
    this.timers.delete(job.jobId);
  }

  private async watchCompletion(job: ClusterJob, gen: number): Promise<void> {
    const current = () => this.generation.get(job.jobId) === gen && job.state === 'running';
    try {
      for (const nodeId of job.nodes()) {
        for (;;) {
          if (!current()) return;
          const r = await this.client(nodeId).waitJob({ jobId: job.jobId, timeoutMs: 5_000 });
          if (r.done) {
            if (r.job!.state !== 'completed') throw new Error(`units on ${nodeId} ended ${r.job!.state}: ${r.job!.lastError}`);
            break;
          }
        }
      }
      if (!current()) return;
      this.disarm(job);
      // A last round records the job's end state (after any periodic one still running).
      await job.whenIdle();
      if (!current()) return;
      const last = job.gridManaged ? null : await job.checkpoint().catch(() => null);
      if (current()) job.state = 'completed';
      this.log.info({ jobId: job.jobId, lastEpoch: String(job.lastEpoch), finalRound: last?.kind ?? 'none' }, 'job completed');
    } catch (err) {
      if (current()) this.log.warn({ jobId: job.jobId, err: String(err) }, 'waiting for the job failed; a recovery will take over if a node failed');
    }
  }

  private async recover(job: ClusterJob, failedNodeId: string): Promise<void> {
    const t0 = performance.now();
    job.state = 'recovering';
    this.disarm(job);
    this.generation.set(job.jobId, (this.generation.get(job.jobId) ?? 0) + 1);
    job.participantFailed(failedNodeId, `node ${failedNodeId} declared failed by the detector`);
    try {
      const survivors = job.nodes().filter((n) => n !== failedNodeId);
      await Promise.all(survivors.map((n) => this.client(n).stopJob({ jobId: job.jobId }).catch(() => undefined)));
      const moved = moveFailedNode(job.placement, failedNodeId, this.capacities());
      job.placement = moved.placement;
      for (const [writer, holder] of job.partOwners) if (holder === failedNodeId) job.partOwners.set(writer, moved.spareNodeId);
      if (!job.partOwners.has(moved.spareNodeId)) job.partOwners.set(moved.spareNodeId, moved.spareNodeId);
      for (const nodeId of job.nodes()) {
        const spec = job.specFor(nodeId);
        if (job.lastEpoch === null) {
          await this.client(nodeId).stopJob({ jobId: job.jobId }).catch(() => undefined);
          await this.client(nodeId).startJob({ job: spec });
        } else {
          await this.client(nodeId).restore({ jobId: job.jobId, epoch: job.lastEpoch, partsFrom: job.partsFor(nodeId), job: spec });
        }
      }
      job.recoveries += 1;
      job.state = 'running';
      this.arm(job);
      const ms = performance.now() - t0;
      this.log.warn({ jobId: job.jobId, failed: failedNodeId, spare: moved.spareNodeId, epoch: String(job.lastEpoch), ms }, 'job recovered');
      this.events.recovered(job.jobId, ms, true);
    } catch (err) {
      job.state = 'failed';
      job.lastError = `recovery from the loss of ${failedNodeId} failed: ${err instanceof Error ? err.message : String(err)}`;
      this.log.error({ jobId: job.jobId, err: job.lastError }, 'recovery failed');
      this.events.recovered(job.jobId, performance.now() - t0, false);
    }
  }

  shutdown(): void {
    for (const job of this.jobs.values()) {
      this.disarm(job);
      job.stop();
    }
    this.detector.stop();
    for (const n of this.nodes.values()) n.client.close();
  }
}
