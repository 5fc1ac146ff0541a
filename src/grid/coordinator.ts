import { status as grpcStatus } from '@grpc/grpc-js';
import { GridError, notFound } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { ClusterClient } from '../wire/cluster-client.js';
import type { TierRuntime } from '../wire/clients.js';
import { repeat, sleep, type Repeating } from '../runtime/timers.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import { MonitorDriver, type DetectorConfig, type VerdictChange, type Verdict } from '../detector/index.js';
import { leaseMarginMs, leaseSafeAfter } from '../detector/lease.js';
import type { RoundConfig, RoundOutcome, StartInput } from '../protocol/core/round.js';
import type { GridCatalog } from './catalog.js';
import { GridJob, type GridJobState } from './grid-job.js';
import { ClusterFollower } from './cluster-follower.js';
import { rollBack, type RestoreCall } from './rollback.js';
import { judgeShares, type ShareReport } from './core/shares.js';
import { runFinalRound } from '../protocol/final-round.js';

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
  // For Watch readers (watch-events.ts); metrics need none of these.
  clusterRegistered?(clusterId: string, incarnation: bigint, address: string): void;
  jobPlaced?(jobId: string, clusters: ReadonlyMap<string, string>): void;
  jobState?(job: GridJob, from: GridJobState, to: GridJobState): void;
  roundStarted?(round: StartInput): void;
  recoveryStarted?(jobId: string, reason: string): void;
}

/** A look at a job's clusters that failed (a status call) is tried again after this, doubling up to MAX. */
const LOOK_RETRY_MS = 250;
const LOOK_RETRY_MAX_MS = 4_000;

export class GridCoordinator {
  readonly clusters = new Map<string, GridClusterEntry>();
  readonly jobs = new Map<string, GridJob>();
  readonly detector: MonitorDriver;
  failuresDetected = 0;
  recoveries = 0;
  private readonly timers = new Map<string, Repeating[]>();
  private readonly recovering = new Map<string, Promise<void>>();
  private readonly graceTimers: unknown[] = [];
  private readonly startedAt: number;

  /** The clusters' Watch streams: how the grid hears that a job's share ended there. */
  private readonly followers: ClusterFollower;

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

  // ---- recovery from a lost cluster ----

  private recoverSoon(job: GridJob, reason: string): void {
    job.state = 'recovering';
    this.events.recoveryStarted?.(job.jobId, reason);
    const prev = this.recovering.get(job.jobId) ?? Promise.resolve();
    const next = prev.then(() => this.recover(job, reason));
    this.recovering.set(job.jobId, next);
  }

  /** When no lease on this job that a lost cluster (or its agents) held can still hold. */
  private safeAt(job: GridJob, clusterId: string): number {
    const c = this.clusters.get(clusterId);
    const known = this.catalog.cluster(clusterId);
    // Unknown to this incarnation: whatever the previous one granted ended by its death, before our start.
    // A share lost while its cluster lives: the cluster's grants since then did not name this job.
    const lastGrant = Math.min(c?.lastGrantMs ?? this.startedAt, job.shareLostAtMs.get(clusterId) ?? Infinity);
    const agentLease = c?.agentLeaseMs || known?.agentLeaseMs || this.settings.clusterLeaseMs;
    return leaseSafeAfter(lastGrant, this.settings.clusterLeaseMs, agentLease, leaseMarginMs(this.settings.clusterLeaseMs + agentLease));
  }

  private async recover(job: GridJob, reason: string): Promise<void> {
    if ((job.lost.size === 0 && !job.rollback) || job.state !== 'recovering') return;
    const t0 = this.runtime.clock.nowMs();
    let lost = new Set(job.lost);
    try {
      // The lost clusters' units, and their agents', must be dead before they run elsewhere;
      // a cluster lost during the wait joins it.
      let waited = 0;
      for (;;) {
        lost = new Set(job.lost);
        const wait = Math.max(0, ...[...lost].map((id) => this.safeAt(job, id) - this.runtime.clock.nowMs()));
        if (wait <= 0) break;
        if (waited === 0) this.log.warn({ jobId: job.jobId, lost: [...lost], reason, leaseWaitMs: Math.round(wait) }, 'recovering the job from a lost cluster once its leases have lapsed');
        waited += wait;
        await sleep(this.runtime.timers, wait);
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
      const { plan, line, passedOver } = await rollBack({
        catalog: this.catalog,
        storeOf: (id) => this.clusters.get(id)?.storeDir || this.catalog.cluster(id)?.storeDir,
        restore: (id, call) => this.restoreOn(id, call),
      }, job, lost, free);
      if (job.state !== 'recovering') return;
      for (const id of lost) {
        job.lost.delete(id);
        job.shareLostAtMs.delete(id);
      }
      job.recoveries += 1;
      this.recoveries += 1;
      const what = lost.size > 0 ? `the loss of ${[...lost].join(', ')}: units ${plan.moved.join(', ') || 'none'} moved to ${plan.target}` : reason;
      // What was restored, and which newer lines it passed over (invariant 6: say which).
      const walked = passedOver.length > 0 ? `; rolled back to line ${line?.gridEpoch ?? 'none'}, passing over ${passedOver.join('; ')}` : '';
      job.lastError = `recovered from ${what}${walked}`;
      const ms = this.runtime.clock.nowMs() - t0;
      this.log.warn({ jobId: job.jobId, lost: [...lost], target: plan.target, moved: plan.moved, line: line ? String(line.gridEpoch) : 'none', passedOver, leaseWaitMs: Math.round(waited), ms }, 'grid job recovered');
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
      this.events.recovered(job.jobId, this.runtime.clock.nowMs() - t0, false);
    }
  }

  private async restoreOn(clusterId: string, call: RestoreCall): Promise<void> {
    await this.retryUnavailable(() => {
      const client = this.clusters.get(clusterId)?.client;
      if (!client) throw new GridError('unavailable', `cluster ${clusterId} is not registered`);
      return client.restoreGridJob({
        fence: { clusterId: this.settings.gridId, nodeId: 'grid', incarnation: this.settings.incarnation, epoch: 0n },
        jobId: call.jobId,
        job: call.job,
        epoch: call.epoch ?? 0n,
        adopt: call.adopt.map((a) => ({ fromCluster: a.fromCluster, storeDir: a.storeDir, epoch: a.epoch ?? 0n, unitIds: a.unitIds })),
      });
    });
    this.granted(clusterId);
  }

  /** A cluster busy with its own recovery answers UNAVAILABLE: ask again, for a while. */
  private async retryUnavailable<T>(call: () => Promise<T>, forMs = 30_000): Promise<T> {
    const end = this.runtime.clock.nowMs() + forMs;
    for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
      try {
        return await call();
      } catch (err) {
        const code = (err as { code?: number }).code;
        const unavailable = code === grpcStatus.UNAVAILABLE || (err instanceof GridError && err.kind === 'unavailable');
        if (!unavailable || this.runtime.clock.nowMs() + delay > end) throw err;
        this.log.warn({ err: String(err), retryInMs: delay }, 'cluster not ready for the restore; retrying');
        await sleep(this.runtime.timers, delay);
      }
    }
  }

  // ---- timers ----

  private arm(job: GridJob): void {
    const every = repeat(this.runtime.timers, job.spec.checkpointIntervalMs, () => {
      if (job.state !== 'running' || job.core.status().phase !== 'idle') return;
      job.checkpoint().catch((err: unknown) => this.log.warn({ jobId: job.jobId, err: String(err) }, 'grid round not started'));
    });
    this.timers.set(job.jobId, [every]);
    // A share that ended before this instant was reported to no one.
    this.lookAt(job);
  }

  private disarm(job: GridJob): void {
    for (const t of this.timers.get(job.jobId) ?? []) t.stop();
    this.timers.delete(job.jobId);
  }

  /** Per job: a look is running, and whether another must follow it (something happened meanwhile). */
  private readonly looking = new Map<string, { again: boolean; retryMs: number }>();

  /**
   * Reads the job's state in each of its clusters and acts on it; called when
   * a cluster pushes a job event, when a cluster's stream is (re)subscribed,
   * and when the job is armed or running again. One look at a time per job;
   * a call meanwhile makes another follow. A look that could not read every
   * cluster is tried again a little later.
   */
  private lookAt(job: GridJob): void {
    if (!this.timers.has(job.jobId) || job.state !== 'running') return;
    const busy = this.looking.get(job.jobId);
    if (busy) {
      busy.again = true;
      return;
    }
    const state = { again: false, retryMs: LOOK_RETRY_MS };
    this.looking.set(job.jobId, state);
    void (async () => {
      do {
        state.again = false;
        if (!(await this.checkCompletion(job)) && this.timers.has(job.jobId) && job.state === 'running') {
          await sleep(this.runtime.timers, state.retryMs);
          state.retryMs = Math.min(state.retryMs * 2, LOOK_RETRY_MAX_MS);
          state.again = true;
        }
      } while (state.again && this.timers.has(job.jobId) && job.state === 'running' && this.jobs.get(job.jobId) === job);
      this.looking.delete(job.jobId);
    })();
  }

  /** One look; false when a cluster could not be read (it is looked at again). */
  private async checkCompletion(job: GridJob): Promise<boolean> {
    if (job.state !== 'running') return true;
    try {
      const states: ShareReport[] = await Promise.all(job.clusterIds().map(async (clusterId) => {
        const client = this.clusters.get(clusterId)?.client;
        if (!client) return { clusterId, state: 'unregistered', lastError: '' };
        const share = (await client.status()).jobs.find((j) => j.jobId === job.jobId);
        return { clusterId, state: share?.state ?? 'missing', lastError: share?.lastError ?? '' };
      }));
      if (job.state !== 'running') return true;
      const verdict = judgeShares(states);
      switch (verdict.kind) {
        case 'wait':
          return true;
        case 'lose':
          // A share its cluster could not recover is lost, as if the cluster were: its units move.
          this.log.warn({ jobId: job.jobId, clusters: verdict.clusters, reason: verdict.reason }, 'a cluster failed its share of the job: recovering it elsewhere');
          for (const id of verdict.clusters) job.loseShare(id, this.runtime.clock.nowMs());
          job.lastError = verdict.reason;
          job.participantFailed(verdict.clusters[0]!, verdict.reason);
          this.recoverSoon(job, verdict.reason);
          return true;
        case 'rollback':
          // Nothing runs there (its lease lapsed, or it restarted while this grid was away): roll the whole job back to its line.
          job.rollback = true;
          job.lastError = verdict.reason;
          job.participantFailed(states.find((x) => x.state === 'fenced' || x.state === 'missing')!.clusterId, verdict.reason);
          this.log.warn({ jobId: job.jobId, reason: verdict.reason }, 'rolling the job back to its last recovery line');
          this.recoverSoon(job, verdict.reason);
          return true;
        case 'completed':
          break;
      }
      this.disarm(job);
      // Completed only with the end state on a committed line (core/final-round.ts).
      const end = await runFinalRound(this.runtime.timers, () => job.checkpointNext(), () => job.state === 'running');
      if (end === null) {
        // A recovery took over (a cluster was lost meanwhile): watch for the end again once it is done.
        if (job.state === 'running' || job.state === 'recovering') this.arm(job);
        return true;
      }
      if (end.kind === 'completed') {
        job.state = 'completed';
        this.log.info({ jobId: job.jobId, last: String(end.epoch) }, 'grid job completed');
      } else {
        job.state = 'failed';
        job.lastError = end.reason;
        this.log.error({ jobId: job.jobId, err: end.reason }, 'grid job failed: its final state is not checkpointed');
      }
      this.saveJob(job);
      return true;
    } catch (err) {
      // A cluster that does not answer for good is the detector's business; until then, look again.
      this.log.debug({ jobId: job.jobId, err: String(err) }, 'could not read a cluster\'s job state');
      return false;
    }
  }

  shutdown(): void {
    this.followers.stop();
    for (const t of this.graceTimers) this.runtime.timers.clearTimer(t);
    for (const job of this.jobs.values()) {
      this.disarm(job);
      job.stop();
    }
    this.detector.stop();
    for (const c of this.clusters.values()) c.client?.close();
  }
}
