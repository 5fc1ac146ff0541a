import { GridError, notFound } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { ClusterClient } from '../cluster/cluster-client.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import { MonitorDriver, type DetectorConfig, type VerdictChange, type Verdict } from '../detector/index.js';
import type { RoundConfig, RoundOutcome } from '../cluster/core/round.js';
import type { GridCatalog } from './catalog.js';
import { GridJob } from './grid-job.js';

// The grid coordinator's shell: cluster registry and heartbeats (through the
// detector core), jobs spread over clusters, periodic coordinated grid
// rounds, and the catalog of recovery lines (which survives restarts). A lost
// cluster coordinator is detected, reported (log, status, metric) and its
// jobs' rounds abort; moving its units to another cluster is not done yet.

export interface GridSettings {
  gridId: string;
  incarnation: bigint;
  detector: DetectorConfig;
  round: RoundConfig;
  defaultCheckpointIntervalMs: number;
  rpcTimeoutMs: number;
}

export interface GridClusterEntry {
  clusterId: string;
  incarnation: bigint;
  address: string;
  verdict: Verdict;
  client: ClusterClient;
}

export interface GridEvents {
  roundFinished(o: RoundOutcome): void;
  clusterVerdict(c: VerdictChange): void;
}

const COMPLETION_POLL_MS = 200;

export class GridCoordinator {
  readonly clusters = new Map<string, GridClusterEntry>();
  readonly jobs = new Map<string, GridJob>();
  readonly detector: MonitorDriver;
  failuresDetected = 0;
  private readonly timers = new Map<string, NodeJS.Timeout[]>();

  constructor(readonly settings: GridSettings, readonly catalog: GridCatalog, private readonly log: Logger, private readonly events: GridEvents) {
    this.detector = new MonitorDriver({ config: settings.detector, onChange: (c) => this.onVerdict(c) });
  }

  registerCluster(c: { clusterId: string; incarnation: bigint; address: string }): void {
    const old = this.clusters.get(c.clusterId);
    if (old && old.incarnation > c.incarnation) {
      throw new GridError('failed-precondition', `fenced: cluster ${c.clusterId} incarnation ${c.incarnation} is older than ${old.incarnation}`);
    }
    old?.client.close();
    this.clusters.set(c.clusterId, { ...c, verdict: 'alive', client: new ClusterClient(c.address, this.settings.rpcTimeoutMs) });
    this.detector.watch(c.clusterId, c.incarnation);
    this.log.info({ cluster: c.clusterId, incarnation: String(c.incarnation), address: c.address }, 'cluster registered');
  }

  heartbeat(clusterId: string, incarnation: bigint, seq: number): boolean {
    const c = this.clusters.get(clusterId);
    if (!c || c.incarnation !== incarnation || c.verdict === 'failed') return false;
    return this.detector.heartbeat(clusterId, incarnation, seq) === null;
  }

  private onVerdict(change: VerdictChange): void {
    this.events.clusterVerdict(change);
    const c = this.clusters.get(change.peer);
    if (!c || c.incarnation !== change.incarnation) return;
    c.verdict = change.to;
    this.log.warn({ cluster: change.peer, from: change.from, to: change.to, phi: change.phi }, `cluster ${change.to}`);
    if (change.to !== 'failed') return;
    this.failuresDetected += 1;
    for (const job of this.jobs.values()) {
      if (!job.clusterIds().includes(change.peer) || job.state !== 'running') continue;
      job.participantFailed(change.peer, `cluster ${change.peer} declared failed by the grid's detector`);
      job.lastError = `cluster ${change.peer} lost; its units are not moved to another cluster yet`;
    }
  }

  async submitJob(raw: JobSpec): Promise<GridJob> {
    const existing = this.jobs.get(raw.jobId);
    if (existing && existing.state === 'running') throw new GridError('already-exists', `job ${raw.jobId} is already running on the grid`);
    if (raw.units.length === 0) throw new GridError('invalid-argument', `job ${raw.jobId} has no units`);
    const alive = [...this.clusters.values()].filter((c) => c.verdict === 'alive').map((c) => c.clusterId).sort();
    if (alive.length === 0) throw new GridError('unavailable', 'no alive cluster is registered');
    const spec = { ...raw, checkpointIntervalMs: raw.checkpointIntervalMs || this.settings.defaultCheckpointIntervalMs };
    const clusters = new Map(spec.units.map((u, i) => [u.unitId, alive[i % alive.length]!]));
    const job = new GridJob(spec, clusters, this.settings.round, {
      gridId: this.settings.gridId,
      incarnation: this.settings.incarnation,
      catalog: this.catalog,
      clusterOf: (id) => this.clusters.get(id)?.client ?? null,
      log: this.log,
      onOutcome: (o) => this.events.roundFinished(o),
    });
    this.jobs.set(spec.jobId, job);
    for (const id of job.clusterIds()) {
      await this.clusters.get(id)!.client.submitJob({ job: job.specFor(id), gridManaged: true });
    }
    this.arm(job);
    this.log.info({ jobId: spec.jobId, clusters: Object.fromEntries(clusters) }, 'grid job started');
    return job;
  }

  job(jobId: string): GridJob {
    const job = this.jobs.get(jobId);
    if (!job) throw notFound(`unknown job ${JSON.stringify(jobId)} on grid ${this.settings.gridId}`);
    return job;
  }

  private arm(job: GridJob): void {
    const every = setInterval(() => {
      if (job.state !== 'running' || job.core.status().phase !== 'idle') return;
      job.checkpoint().catch((err: unknown) => this.log.warn({ jobId: job.jobId, err: String(err) }, 'grid round not started'));
    }, job.spec.checkpointIntervalMs);
    const poll = setInterval(() => void this.pollCompletion(job), COMPLETION_POLL_MS);
    this.timers.set(job.jobId, [every, poll]);
  }

  private disarm(job: GridJob): void {
    for (const t of this.timers.get(job.jobId) ?? []) clearInterval(t);
    this.timers.delete(job.jobId);
  }

  private polling = new Set<string>();

  /** The clusters have no event stream yet: ask them, a few times a second. */
  private async pollCompletion(job: GridJob): Promise<void> {
    if (this.polling.has(job.jobId) || job.state !== 'running') return;
    this.polling.add(job.jobId);
    try {
      const states = await Promise.all(job.clusterIds().map(async (id) => {
        const s = await this.clusters.get(id)!.client.status();
        return s.jobs.find((j) => j.jobId === job.jobId)?.state ?? 'unknown';
      }));
      if (!states.every((s) => s === 'completed')) return;
      this.disarm(job);
      const last = await job.checkpointNext().catch(() => null);
      job.state = 'completed';
      this.log.info({ jobId: job.jobId, last: last?.kind ?? 'none' }, 'grid job completed');
    } catch {
      // a cluster that does not answer is the detector's business
    } finally {
      this.polling.delete(job.jobId);
    }
  }

  shutdown(): void {
    for (const job of this.jobs.values()) {
      this.disarm(job);
      job.stop();
    }
    this.detector.stop();
    for (const c of this.clusters.values()) c.client.close();
  }
}
