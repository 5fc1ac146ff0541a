import { status as grpcStatus } from '@grpc/grpc-js';
import { GridError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { TierRuntime } from '../wire/clients.js';
import { sleep } from '../runtime/timers.js';
import { leaseMarginMs, leaseSafeAfter } from '../detector/lease.js';
import type { GridCatalog } from './catalog.js';
import type { GridJob } from './grid-job.js';
import { rollBack, type RestoreCall } from './rollback.js';
import type { GridClusterEntry, GridEvents, GridSettings } from './coordinator.js';

// The grid coordinator's recovery from a lost cluster, one recovery of a job
// at a time: wait until no lease a lost cluster (or its agents) held on the
// job can still hold, then move its units to a cluster with room and roll
// the whole job back to its last recovery line (rollback.ts). A cluster
// busy with its own recovery is asked again. Owned by the coordinator,
// which passes what it needs explicitly (GridRecoveryHost).

/** What a recovery needs of the grid coordinator. */
export interface GridRecoveryHost {
  readonly settings: GridSettings;
  readonly runtime: TierRuntime;
  readonly catalog: GridCatalog;
  readonly clusters: ReadonlyMap<string, GridClusterEntry>;
  readonly log: Logger;
  readonly events: GridEvents;
  /** When this incarnation of the grid started. */
  readonly startedAtMs: number;
  disarm(job: GridJob): void;
  saveJob(job: GridJob): void;
  /** A call that returned: the cluster holds a fresh lease. */
  granted(clusterId: string): void;
  /** Counts a recovery done (GridCoordinator.recoveries). */
  countRecovery(): void;
}

export class GridRecoveries {
  private readonly recovering = new Map<string, Promise<void>>();

  constructor(private readonly g: GridRecoveryHost) {}

  recoverSoon(job: GridJob, reason: string): void {
    job.state = 'recovering';
    this.g.events.recoveryStarted?.(job.jobId, reason);
    const prev = this.recovering.get(job.jobId) ?? Promise.resolve();
    const next = prev.then(() => this.recover(job, reason));
    this.recovering.set(job.jobId, next);
  }

  /** When no lease on this job that a lost cluster (or its agents) held can still hold. */
  private safeAt(job: GridJob, clusterId: string): number {
    const { g } = this;
    const c = g.clusters.get(clusterId);
    const known = g.catalog.cluster(clusterId);
    // Unknown to this incarnation: whatever the previous one granted ended by its death, before our start.
    // A share lost while its cluster lives: the cluster's grants since then did not name this job.
    const lastGrant = Math.min(c?.lastGrantMs ?? g.startedAtMs, job.shareLostAtMs.get(clusterId) ?? Infinity);
    const agentLease = c?.agentLeaseMs || known?.agentLeaseMs || g.settings.clusterLeaseMs;
    return leaseSafeAfter(lastGrant, g.settings.clusterLeaseMs, agentLease, leaseMarginMs(g.settings.clusterLeaseMs + agentLease));
  }

  private async recover(job: GridJob, reason: string): Promise<void> {
    if ((job.lost.size === 0 && !job.rollback) || job.state !== 'recovering') return;
    const { g } = this;
    const t0 = g.runtime.clock.nowMs();
    let lost = new Set(job.lost);
    try {
      // The lost clusters' units, and their agents', must be dead before they run elsewhere;
      // a cluster lost during the wait joins it.
      let waited = 0;
      for (;;) {
        lost = new Set(job.lost);
        const wait = Math.max(0, ...[...lost].map((id) => this.safeAt(job, id) - g.runtime.clock.nowMs()));
        if (wait <= 0) break;
        if (waited === 0) g.log.warn({ jobId: job.jobId, lost: [...lost], reason, leaseWaitMs: Math.round(wait) }, 'recovering the job from a lost cluster once its leases have lapsed');
        waited += wait;
        await sleep(g.runtime.timers, wait);
      }
      await job.whenIdle();
      if (job.state !== 'recovering') return;
      lost = new Set(job.lost);
      job.rollback = false;
      const free = new Map<string, number>();
      await Promise.all([...g.clusters.values()].filter((c) => c.verdict === 'alive' && c.client && !lost.has(c.clusterId)).map(async (c) => {
        const s = await c.client!.status().catch(() => null);
        if (!s) return;
        free.set(c.clusterId, s.nodes.filter((n) => n.verdict === 'alive').reduce((a, n) => a + Math.max(0, n.capacityUnits - n.placedUnits), 0));
      }));
      const { plan, line, passedOver } = await rollBack({
        catalog: g.catalog,
        storeOf: (id) => g.clusters.get(id)?.storeDir || g.catalog.cluster(id)?.storeDir,
        restore: (id, call) => this.restoreOn(id, call),
      }, job, lost, free);
      if (job.state !== 'recovering') return;
      for (const id of lost) {
        job.lost.delete(id);
        job.shareLostAtMs.delete(id);
      }
      job.recoveries += 1;
      g.countRecovery();
      const what = lost.size > 0 ? `the loss of ${[...lost].join(', ')}: units ${plan.moved.join(', ') || 'none'} moved to ${plan.target}` : reason;
      // What was restored, and which newer lines it passed over (invariant 6: say which).
      const walked = passedOver.length > 0 ? `; rolled back to line ${line?.gridEpoch ?? 'none'}, passing over ${passedOver.join('; ')}` : '';
      job.lastError = `recovered from ${what}${walked}`;
      const ms = g.runtime.clock.nowMs() - t0;
      g.log.warn({ jobId: job.jobId, lost: [...lost], target: plan.target, moved: plan.moved, line: line ? String(line.gridEpoch) : 'none', passedOver, leaseWaitMs: Math.round(waited), ms }, 'grid job recovered');
      g.events.recovered(job.jobId, ms, true);
      if (job.lost.size > 0) {
        // Another cluster was lost meanwhile: the job stays recovering, and goes again.
        g.saveJob(job);
        this.recoverSoon(job, `cluster ${[...job.lost].join(', ')} was lost during a recovery`);
        return;
      }
      job.state = 'running';
      g.saveJob(job);
    } catch (err) {
      if (job.state !== 'recovering') return;
      job.state = 'failed';
      job.lastError = `recovery from ${lost.size > 0 ? `the loss of ${[...lost].join(', ')}` : reason} failed: ${err instanceof Error ? err.message : String(err)}`;
      g.disarm(job);
      g.saveJob(job);
      g.log.error({ jobId: job.jobId, err: job.lastError }, 'grid recovery failed');
      g.events.recovered(job.jobId, g.runtime.clock.nowMs() - t0, false);
    }
  }

  private async restoreOn(clusterId: string, call: RestoreCall): Promise<void> {
    const { g } = this;
    await this.retryUnavailable(() => {
      const client = g.clusters.get(clusterId)?.client;
      if (!client) throw new GridError('unavailable', `cluster ${clusterId} is not registered`);
      return client.restoreGridJob({
        fence: { clusterId: g.settings.gridId, nodeId: 'grid', incarnation: g.settings.incarnation, epoch: 0n },
        jobId: call.jobId,
        job: call.job,
        epoch: call.epoch ?? 0n,
        adopt: call.adopt.map((a) => ({ fromCluster: a.fromCluster, storeDir: a.storeDir, epoch: a.epoch ?? 0n, unitIds: a.unitIds })),
      });
    });
    g.granted(clusterId);
  }

  /** A cluster busy with its own recovery answers UNAVAILABLE: ask again, for a while. */
  private async retryUnavailable<T>(call: () => Promise<T>, forMs = 30_000): Promise<T> {
    const { runtime, log } = this.g;
    const end = runtime.clock.nowMs() + forMs;
    for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
      try {
        return await call();
      } catch (err) {
        const code = (err as { code?: number }).code;
        const unavailable = code === grpcStatus.UNAVAILABLE || (err instanceof GridError && err.kind === 'unavailable');
        if (!unavailable || runtime.clock.nowMs() + delay > end) throw err;
        log.warn({ err: String(err), retryInMs: delay }, 'cluster not ready for the restore; retrying');
        await sleep(runtime.timers, delay);
      }
    }
  }
}
