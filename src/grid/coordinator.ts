import { GridError, notFound } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { ClusterClient } from '../wire/cluster-client.js';
import type { TierRuntime } from '../wire/clients.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import { MonitorDriver, type DetectorConfig, type VerdictChange, type Verdict } from '../detector/index.js';
import type { RoundConfig, RoundOutcome, StartInput } from '../protocol/core/round.js';
import type { GridCatalog } from './catalog.js';
import { GridJob, type GridJobState } from './grid-job.js';
import { ClusterFollower } from './cluster-follower.js';
import { GridRecoveries } from './job-recovery.js';
import { GridJobWatch } from './job-watch.js';

// The grid coordinator's shell: cluster registry and heartbeats (through the
// detector core), jobs spread over clusters, periodic coordinated grid
// rounds, the catalog (recovery lines, jobs, cluster stores; it survives
// restarts, and a restarted grid resumes its jobs), and recovery from a lost
// cluster: its units move to another cluster with room, their pages read
// from the lost cluster's store, and the whole job rolls back to its last
// recovery line (core/recovery-plan.ts).
// Leases: each heartbeat answer names the jobs the cluster may keep running;
// a lost cluster gets none, and its units run elsewhere only once its lease,
// and its agents' leases under it, have surely lapsed.
// Here: the cluster registry, heartbeats, verdicts and leases, and job
// submission and resumption. In files of their own: arming a job, its
// periodic rounds and the looks at its shares that find its end
// (job-watch.ts); recovery sequencing after a lost cluster (job-recovery.ts,
// the roll back in rollback.ts).

export interface GridSettings {
  gridId: string;
  incarnation: bigint;
  detector: DetectorConfig;
  round: RoundConfig;
  defaultCheckpointIntervalMs: number;
  rpcTimeoutMs: number;
  /** How long a cluster's job lease lasts (from its heartbeat's send). */
  clusterLeaseMs: number;
}

export interface GridClusterEntry {
  clusterId: string;
  incarnation: bigint;
  address: string;
  verdict: Verdict;
  /** Null until a cluster the catalog knows registers with this incarnation of the grid. */
  client: ClusterClient | null;
  storeDir: string;
  agentLeaseMs: number;
  /** The last instant the grid vouched for this cluster's jobs. */
  lastGrantMs: number;
}

export interface GridEvents {
  roundFinished(o: RoundOutcome): void;
  clusterVerdict(c: VerdictChange): void;
  recovered(jobId: string, ms: number, ok: boolean): void;
  // For Watch readers (watch-events.ts); metrics need none of these.
  clusterRegistered?(clusterId: string, incarnation: bigint, address: string): void;
  jobPlaced?(jobId: string, clusters: ReadonlyMap<string, string>): void;
  jobState?(job: GridJob, from: GridJobState, to: GridJobState): void;
  roundStarted?(round: StartInput): void;
  recoveryStarted?(jobId: string, reason: string): void;
}

export class GridCoordinator {
  readonly clusters = new Map<string, GridClusterEntry>();
  readonly jobs = new Map<string, GridJob>();
  readonly detector: MonitorDriver;
  failuresDetected = 0;
  recoveries = 0;
  private readonly graceTimers: unknown[] = [];
  private readonly startedAt: number;

  /** The clusters' Watch streams: how the grid hears that a job's share ended there. */
  private readonly followers: ClusterFollower;
  /** Periodic rounds and looks at each armed job's shares (job-watch.ts). */
  private readonly watch: GridJobWatch;
  /** One recovery of a job at a time (job-recovery.ts). */
  private readonly recovery: GridRecoveries;

  constructor(
    readonly settings: GridSettings,
    readonly runtime: TierRuntime,
    readonly catalog: GridCatalog,
    private readonly log: Logger,
    private readonly events: GridEvents,
  ) {
    this.startedAt = runtime.clock.nowMs();
    this.detector = new MonitorDriver({
      config: settings.detector,
      clock: runtime.clock,
      timers: runtime.timers,
      onChange: (c) => this.onVerdict(c),
      // This process was stopped (SIGSTOP, GC, VM stall): its clusters' silence meanwhile is not theirs.
      onOwnPause: (p) => this.log.warn({ pausedMs: Math.round(p.toMs - p.fromMs) }, 'failure detector was paused with this process; its clusters get that time back'),
    });
    this.watch = new GridJobWatch({
      runtime, log, clusters: this.clusters, jobs: this.jobs,
      recoverSoon: (job, reason) => this.recoverSoon(job, reason),
      saveJob: (job) => this.saveJob(job),
    });
    this.recovery = new GridRecoveries({
      settings, runtime, catalog, log, events, clusters: this.clusters, startedAtMs: this.startedAt,
      disarm: (job) => this.watch.disarm(job),
      saveJob: (job) => this.saveJob(job),
      granted: (id) => this.granted(id),
      countRecovery: () => {
        this.recoveries += 1;
      },
    });
    this.followers = new ClusterFollower({
      jobEvent: (_clusterId, e) => {
        const job = this.jobs.get(e.jobId);
        if (job) this.lookAt(job);
      },
      resubscribed: (clusterId) => {
        for (const job of this.jobs.values()) if (job.clusterIds().includes(clusterId)) this.lookAt(job);
      },
    }, log, runtime.timers);
  }

  // ---- clusters ----

  registerCluster(c: { clusterId: string; incarnation: bigint; address: string; storeDir: string; agentLeaseMs: number }): void {
    const old = this.clusters.get(c.clusterId);
    if (old && old.incarnation > c.incarnation) {
      throw new GridError('failed-precondition', `fenced: cluster ${c.clusterId} incarnation ${c.incarnation} is older than ${old.incarnation}`);
    }
    // A new incarnation knows none of the old one's jobs: for them it is lost.
    if (old && old.incarnation !== 0n && old.incarnation < c.incarnation && old.verdict !== 'failed') {
      this.clusterLost(old.clusterId, `cluster ${c.clusterId} restarted (incarnation ${old.incarnation} → ${c.incarnation})`);
    }
    old?.client?.close();
    const client = this.runtime.clients.clusterClient(c.address, this.settings.rpcTimeoutMs);
    this.followers.follow(c.clusterId, client);
    this.clusters.set(c.clusterId, {
      ...c, verdict: 'alive', client,
      // Leases the old incarnation held still count.
      lastGrantMs: old?.lastGrantMs ?? this.runtime.clock.nowMs(),
    });
    // The same incarnation back after a failed verdict (a healed partition): a fresh start, since
    // failed is final for an incarnation in the detector. Its jobs moved on; it holds no lease.
    if (old && old.incarnation === c.incarnation && old.verdict === 'failed') this.detector.unwatch(c.clusterId);
    this.detector.watch(c.clusterId, c.incarnation);
    void this.catalog.saveCluster(c.clusterId, { storeDir: c.storeDir, agentLeaseMs: c.agentLeaseMs })
      .catch((err: unknown) => this.log.error({ cluster: c.clusterId, err: String(err) }, 'could not record the cluster in the catalog'));
    this.log.info({ cluster: c.clusterId, incarnation: String(c.incarnation), address: c.address, store: c.storeDir }, 'cluster registered');
    this.events.clusterRegistered?.(c.clusterId, c.incarnation, c.address);
  }

  heartbeat(clusterId: string, incarnation: bigint, seq: number): { known: boolean; leasedJobs: string[] } {
    const c = this.clusters.get(clusterId);
    if (!c || c.incarnation !== incarnation || c.verdict === 'failed') return { known: false, leasedJobs: [] };
    if (this.detector.heartbeat(clusterId, incarnation, seq) !== null) return { known: false, leasedJobs: [] };
    const leasedJobs = this.leasedJobsOf(clusterId);
    if (leasedJobs.length > 0) c.lastGrantMs = this.runtime.clock.nowMs();
    return { known: true, leasedJobs };
  }

  leasedJobsOf(clusterId: string): string[] {
    return [...this.jobs.values()]
      .filter((j) => (j.state === 'running' || j.state === 'recovering') && !j.lost.has(clusterId) && j.clusterIds().includes(clusterId))
      .map((j) => j.jobId);
  }

  private onVerdict(change: VerdictChange): void {
    this.events.clusterVerdict(change);
    const c = this.clusters.get(change.peer);
    if (!c || c.incarnation !== change.incarnation) return;
    c.verdict = change.to;
    this.log.warn({ cluster: change.peer, from: change.from, to: change.to, phi: change.phi }, `cluster ${change.to}`);
    if (change.to !== 'failed') return;
    this.failuresDetected += 1;
    this.clusterLost(change.peer, `cluster ${change.peer} declared failed by the grid's detector`);
  }

  private clusterLost(clusterId: string, reason: string): void {
    for (const job of this.jobs.values()) {
      if (!job.clusterIds().includes(clusterId) || (job.state !== 'running' && job.state !== 'recovering')) continue;
      job.lost.add(clusterId);
      job.participantFailed(clusterId, reason);
      job.lastError = reason;
      this.recoverSoon(job, reason);
    }
  }

  // ---- jobs ----

  async submitJob(raw: JobSpec): Promise<GridJob> {
    const existing = this.jobs.get(raw.jobId);
    if (existing && (existing.state === 'running' || existing.state === 'recovering')) {
      throw new GridError('already-exists', `job ${raw.jobId} is already ${existing.state} on the grid`);
    }
    if (raw.units.length === 0) throw new GridError('invalid-argument', `job ${raw.jobId} has no units`);
    const alive = [...this.clusters.values()].filter((c) => c.verdict === 'alive' && c.client).map((c) => c.clusterId).sort();
    if (alive.length === 0) throw new GridError('unavailable', 'no alive cluster is registered');
    const spec = { ...raw, checkpointIntervalMs: raw.checkpointIntervalMs || this.settings.defaultCheckpointIntervalMs };
    const job = this.newJob(spec, new Map(spec.units.map((u, i) => [u.unitId, alive[i % alive.length]!])));
    this.jobs.set(spec.jobId, job);
    await this.catalog.saveJob(job.record());
    for (const id of job.clusterIds()) {
      await this.clusters.get(id)!.client!.submitJob({ job: job.specFor(id), gridManaged: true });
      this.granted(id);
    }
    this.arm(job);
    this.log.info({ jobId: spec.jobId, clusters: Object.fromEntries(job.clusters) }, 'grid job started');
    this.events.jobPlaced?.(spec.jobId, job.clusters);
    return job;
  }

  /** A restarted grid takes its jobs back from the catalog. */
  resume(): void {
    for (const rec of this.catalog.jobRecords()) {
      if (rec.state !== 'running' && rec.state !== 'recovering') continue;
      const job = this.newJob(rec.spec, new Map(Object.entries(rec.clusters)));
      job.recoveries = rec.recoveries;
      for (const id of rec.lost ?? []) job.lost.add(id);
      this.jobs.set(rec.spec.jobId, job);
      for (const id of job.clusterIds()) {
        if (this.clusters.has(id)) continue;
        const known = this.catalog.cluster(id);
        this.clusters.set(id, {
          clusterId: id, incarnation: 0n, address: '', verdict: 'alive', client: null,
          storeDir: known?.storeDir ?? '', agentLeaseMs: known?.agentLeaseMs ?? 0, lastGrantMs: this.runtime.clock.nowMs(),
        });
        // Its lease on the job outlasts a grid restart; if it has not registered by then, it is lost.
        const grace = this.runtime.timers.setTimer(() => {
          const c = this.clusters.get(id);
          if (!c || c.incarnation !== 0n || c.verdict === 'failed') return;
          c.verdict = 'failed';
          this.failuresDetected += 1;
          this.log.warn({ cluster: id }, 'cluster failed: it did not register again after the grid restarted');
          this.clusterLost(id, `cluster ${id} did not register again within ${this.settings.clusterLeaseMs} ms of the grid's restart`);
        }, this.settings.clusterLeaseMs);
        this.graceTimers.push(grace);
      }
      this.arm(job);
      this.log.info({ jobId: job.jobId, clusters: Object.fromEntries(job.clusters), was: rec.state, lost: [...job.lost] }, 'grid job resumed from the catalog');
      // A recovery this grid's previous incarnation had begun is done again (restores are idempotent).
      if (rec.state === 'recovering') {
        job.rollback = true;
        this.recoverSoon(job, 'the grid restarted during a recovery');
      }
    }
  }

  job(jobId: string): GridJob {
    const job = this.jobs.get(jobId);
    if (!job) throw notFound(`unknown job ${JSON.stringify(jobId)} on grid ${this.settings.gridId}`);
    return job;
  }

  private newJob(spec: JobSpec, clusters: Map<string, string>): GridJob {
    return new GridJob(spec, clusters, this.settings.round, {
      gridId: this.settings.gridId,
      incarnation: this.settings.incarnation,
      runtime: this.runtime,
      catalog: this.catalog,
      clusterOf: (id) => this.clusters.get(id)?.client ?? null,
      log: this.log,
      onOutcome: (o) => this.events.roundFinished(o),
      onState: (j, from, to) => {
        this.events.jobState?.(j, from, to);
        // Back to running after a recovery: whatever the clusters said meanwhile was not acted on.
        if (to === 'running') this.lookAt(j);
      },
      onRoundStarted: (_j, r) => this.events.roundStarted?.(r),
    });
  }

  private granted(clusterId: string): void {
    const c = this.clusters.get(clusterId);
    if (c) c.lastGrantMs = Math.max(c.lastGrantMs, this.runtime.clock.nowMs());
  }

  private saveJob(job: GridJob): void {
    void this.catalog.saveJob(job.record()).catch((err: unknown) => this.log.error({ jobId: job.jobId, err: String(err) }, 'could not record the job in the catalog'));
  }

  // ---- recovery (job-recovery.ts) and the job's watch (job-watch.ts) ----

  private recoverSoon(job: GridJob, reason: string): void {
    this.recovery.recoverSoon(job, reason);
  }

  private arm(job: GridJob): void {
    this.watch.arm(job);
  }

  private lookAt(job: GridJob): void {
    this.watch.lookAt(job);
  }

  shutdown(): void {
    this.followers.stop();
    for (const t of this.graceTimers) this.runtime.timers.clearTimer(t);
    for (const job of this.jobs.values()) {
      this.watch.disarm(job);
      job.stop();
    }
    this.detector.stop();
    for (const c of this.clusters.values()) c.client?.close();
  }
}
