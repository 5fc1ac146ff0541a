import { performance } from 'node:perf_hooks';
import { status as grpcStatus } from '@grpc/grpc-js';
import { GridError, notFound } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { ClusterClient } from '../wire/cluster-client.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import { MonitorDriver, type DetectorConfig, type VerdictChange, type Verdict } from '../detector/index.js';
import { leaseMarginMs, leaseSafeAfter } from '../detector/lease.js';
import type { RoundConfig, RoundOutcome } from '../protocol/core/round.js';
import type { GridCatalog } from './catalog.js';
import { GridJob } from './grid-job.js';
import { planGridRecovery } from './core/recovery-plan.js';

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
}

const COMPLETION_POLL_MS = 200;

export class GridCoordinator {
  readonly clusters = new Map<string, GridClusterEntry>();
  readonly jobs = new Map<string, GridJob>();
  readonly detector: MonitorDriver;
  failuresDetected = 0;
  recoveries = 0;
  private readonly timers = new Map<string, NodeJS.Timeout[]>();
  private readonly recovering = new Map<string, Promise<void>>();
  private readonly graceTimers: NodeJS.Timeout[] = [];
  private readonly startedAt = performance.now();

  constructor(readonly settings: GridSettings, readonly catalog: GridCatalog, private readonly log: Logger, private readonly events: GridEvents) {
    this.detector = new MonitorDriver({
      config: settings.detector,
      onChange: (c) => this.onVerdict(c),
      // This process was stopped (SIGSTOP, GC, VM stall): its clusters' silence meanwhile is not theirs.
      onOwnPause: (p) => this.log.warn({ pausedMs: Math.round(p.toMs - p.fromMs) }, 'failure detector was paused with this process; its clusters get that time back'),
    });
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
    this.clusters.set(c.clusterId, {
      ...c, verdict: 'alive', client: new ClusterClient(c.address, this.settings.rpcTimeoutMs),
      // Leases the old incarnation held still count.
      lastGrantMs: old?.lastGrantMs ?? performance.now(),
    });
    // The same incarnation back after a failed verdict (a healed partition): a fresh start, since
    // failed is final for an incarnation in the detector. Its jobs moved on; it holds no lease.
    if (old && old.incarnation === c.incarnation && old.verdict === 'failed') this.detector.unwatch(c.clusterId);
    this.detector.watch(c.clusterId, c.incarnation);
    void this.catalog.saveCluster(c.clusterId, { storeDir: c.storeDir, agentLeaseMs: c.agentLeaseMs })
      .catch((err: unknown) => this.log.error({ cluster: c.clusterId, err: String(err) }, 'could not record the cluster in the catalog'));
    this.log.info({ cluster: c.clusterId, incarnation: String(c.incarnation), address: c.address, store: c.storeDir }, 'cluster registered');
  }

  heartbeat(clusterId: string, incarnation: bigint, seq: number): { known: boolean; leasedJobs: string[] } {
    const c = this.clusters.get(clusterId);
    if (!c || c.incarnation !== incarnation || c.verdict === 'failed') return { known: false, leasedJobs: [] };
    if (this.detector.heartbeat(clusterId, incarnation, seq) !== null) return { known: false, leasedJobs: [] };
    const leasedJobs = this.leasedJobsOf(clusterId);
    if (leasedJobs.length > 0) c.lastGrantMs = performance.now();
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
          storeDir: known?.storeDir ?? '', agentLeaseMs: known?.agentLeaseMs ?? 0, lastGrantMs: performance.now(),
        });
        // Its lease on the job outlasts a grid restart; if it has not registered by then, it is lost.
        const grace = setTimeout(() => {
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
      catalog: this.catalog,
      clusterOf: (id) => this.clusters.get(id)?.client ?? null,
      log: this.log,
      onOutcome: (o) => this.events.roundFinished(o),
    });
  }

  private granted(clusterId: string): void {
    const c = this.clusters.get(clusterId);
    if (c) c.lastGrantMs = Math.max(c.lastGrantMs, performance.now());
  }

  private saveJob(job: GridJob): void {
    void this.catalog.saveJob(job.record()).catch((err: unknown) => this.log.error({ jobId: job.jobId, err: String(err) }, 'could not record the job in the catalog'));
  }

  // ---- recovery from a lost cluster ----

  private recoverSoon(job: GridJob, reason: string): void {
    job.state = 'recovering';
    const prev = this.recovering.get(job.jobId) ?? Promise.resolve();
    const next = prev.then(() => this.recover(job, reason));
    this.recovering.set(job.jobId, next);
  }

  /** When no lease that a lost cluster (or its agents) held can still hold. */
  private safeAt(clusterId: string): number {
    const c = this.clusters.get(clusterId);
    const known = this.catalog.cluster(clusterId);
    // Unknown to this incarnation: whatever the previous one granted ended by its death, before our start.
    const lastGrant = c?.lastGrantMs ?? this.startedAt;
    const agentLease = c?.agentLeaseMs || known?.agentLeaseMs || this.settings.clusterLeaseMs;
    return leaseSafeAfter(lastGrant, this.settings.clusterLeaseMs, agentLease, leaseMarginMs(this.settings.clusterLeaseMs + agentLease));
  }

  private async recover(job: GridJob, reason: string): Promise<void> {
    if ((job.lost.size === 0 && !job.rollback) || job.state !== 'recovering') return;
    const t0 = performance.now();
    let lost = new Set(job.lost);
    try {
      // The lost clusters' units, and their agents', must be dead before they run elsewhere;
      // a cluster lost during the wait joins it.
      let waited = 0;
      for (;;) {
        lost = new Set(job.lost);
        const wait = Math.max(0, ...[...lost].map((id) => this.safeAt(id) - performance.now()));
        if (wait <= 0) break;
        if (waited === 0) this.log.warn({ jobId: job.jobId, lost: [...lost], reason, leaseWaitMs: Math.round(wait) }, 'recovering the job from a lost cluster once its leases have lapsed');
        waited += wait;
        await new Promise((r) => setTimeout(r, wait));
      }
      await job.whenIdle();
      if (job.state !== 'recovering') return;
      lost = new Set(job.lost);
      job.rollback = false;
      const free = new Map<string, number>();
      await Promise.all([...this.clusters.values()].filter((c) => c.verdict === 'alive' && c.client && !lost.has(c.clusterId)).map(async (c) => {
        const s = await c.client!.status().catch(() => null);
        if (!s) return;
        free.set(c.clusterId, s.nodes.filter((n) => n.verdict === 'alive').reduce((a, n) => a + Math.max(0, n.capacityUnits - n.placedUnits), 0));
      }));
      const line = this.catalog.latest(job.jobId);
      const named = new Set([...job.clusters.values(), ...Object.values(line?.unitClusters ?? {}), ...Object.keys(line?.clusterEpochs ?? {})]);
      const stores = new Map<string, string>();
      for (const id of named) {
        const dir = this.clusters.get(id)?.storeDir || this.catalog.cluster(id)?.storeDir;
        if (dir) stores.set(id, dir);
      }
      const plan = planGridRecovery({ clusters: job.clusters, lost, line, free, stores });
      if (!plan.ok) throw new GridError('resource-exhausted', plan.reason);
      // The plan is recorded first, and every cluster in it is named in heartbeat answers (its lease) from now on.
      job.clusters = plan.clusters;
      await this.catalog.saveJob(job.record());
      await Promise.all([...plan.restores].map(async ([clusterId, r]) => {
        await this.retryUnavailable(() => {
          const client = this.clusters.get(clusterId)?.client;
          if (!client) throw new GridError('unavailable', `cluster ${clusterId} is not registered`);
          return client.restoreGridJob({
            fence: { clusterId: this.settings.gridId, nodeId: 'grid', incarnation: this.settings.incarnation, epoch: 0n },
            jobId: job.jobId,
            job: { ...job.spec, units: job.spec.units.filter((u) => r.units.includes(u.unitId)), checkpointIntervalMs: 0 },
            epoch: r.epoch ?? 0n,
            adopt: r.adopt.map((a) => ({ fromCluster: a.fromCluster, storeDir: a.storeDir, epoch: a.epoch ?? 0n, unitIds: a.unitIds })),
          });
        });
        this.granted(clusterId);
      }));
      if (job.state !== 'recovering') return;
      for (const id of lost) job.lost.delete(id);
      job.recoveries += 1;
      this.recoveries += 1;
      const what = lost.size > 0 ? `the loss of ${[...lost].join(', ')}: units ${plan.moved.join(', ') || 'none'} moved to ${plan.target}` : reason;
      job.lastError = `recovered from ${what}`;
      const ms = performance.now() - t0;
      this.log.warn({ jobId: job.jobId, lost: [...lost], target: plan.target, moved: plan.moved, line: line ? String(line.gridEpoch) : 'none', leaseWaitMs: Math.round(waited), ms }, 'grid job recovered');
      this.events.recovered(job.jobId, ms, true);
      if (job.lost.size > 0) {
        // Another cluster was lost meanwhile: the job stays recovering, and goes again.
        this.saveJob(job);
        this.recoverSoon(job, `cluster ${[...job.lost].join(', ')} was lost during a recovery`);
        return;
      }
      job.state = 'running';
      this.saveJob(job);
    } catch (err) {
      if (job.state !== 'recovering') return;
      job.state = 'failed';
      job.lastError = `recovery from ${lost.size > 0 ? `the loss of ${[...lost].join(', ')}` : reason} failed: ${err instanceof Error ? err.message : String(err)}`;
      this.disarm(job);
      this.saveJob(job);
      this.log.error({ jobId: job.jobId, err: job.lastError }, 'grid recovery failed');
      this.events.recovered(job.jobId, performance.now() - t0, false);
    }
  }

  /** A cluster busy with its own recovery answers UNAVAILABLE: ask again, for a while. */
  private async retryUnavailable<T>(call: () => Promise<T>, forMs = 30_000): Promise<T> {
    const end = performance.now() + forMs;
    for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
      try {
        return await call();
      } catch (err) {
        const code = (err as { code?: number }).code;
        const unavailable = code === grpcStatus.UNAVAILABLE || (err instanceof GridError && err.kind === 'unavailable');
        if (!unavailable || performance.now() + delay > end) throw err;
        this.log.warn({ err: String(err), retryInMs: delay }, 'cluster not ready for the restore; retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  // ---- timers ----

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
        const client = this.clusters.get(id)?.client;
        if (!client) return [id, 'unregistered'] as const;
        const s = await client.status();
        return [id, s.jobs.find((j) => j.jobId === job.jobId)?.state ?? 'missing'] as const;
      }));
      if (job.state !== 'running') return;
      // A cluster that fenced its share (its lease lapsed) or no longer knows the job (it restarted
      // while this grid was away): nothing runs there; roll the whole job back to its line.
      const gone = states.filter(([, st]) => st === 'fenced' || st === 'missing');
      if (gone.length > 0) {
        const reason = gone.map(([id, st]) => `cluster ${id} has the job ${st}`).join('; ');
        job.rollback = true;
        job.lastError = reason;
        job.participantFailed(gone[0]![0], reason);
        this.log.warn({ jobId: job.jobId, reason }, 'rolling the job back to its last recovery line');
        this.recoverSoon(job, reason);
        return;
      }
      if (!states.every(([, st]) => st === 'completed')) return;
      this.disarm(job);
      const last = await job.checkpointNext().catch(() => null);
      job.state = 'completed';
      this.saveJob(job);
      this.log.info({ jobId: job.jobId, last: last?.kind ?? 'none' }, 'grid job completed');
    } catch {
      // a cluster that does not answer is the detector's business
    } finally {
      this.polling.delete(job.jobId);
    }
  }

  shutdown(): void {
    for (const t of this.graceTimers) clearTimeout(t);
    for (const job of this.jobs.values()) {
      this.disarm(job);
      job.stop();
    }
    this.detector.stop();
    for (const c of this.clusters.values()) c.client?.close();
  }
}
