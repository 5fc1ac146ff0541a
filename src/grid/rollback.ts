import { status as grpcStatus } from '@grpc/grpc-js';
import { GridError } from '../common/errors.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import type { GridCatalog, RecoveryLine } from './catalog.js';
import { judgeLine, MAX_LINES_TRIED, type ClusterRestoreResult } from './core/line-walk.js';
import { planGridRecovery, type Adopt, type GridRecoveryPlan } from './core/recovery-plan.js';
import type { GridJob } from './grid-job.js';

// The restoring half of a grid recovery: plan from the newest recovery line
// (core/recovery-plan.ts), record the plan, restore every cluster of the job;
// when a cluster answers that the line's epoch does not restore there, walk
// back to the line before, every cluster together (core/line-walk.ts). The
// lines passed over are dropped from the catalog: the newest line is then
// the one restored.

export interface RestoreCall {
  jobId: string;
  job: JobSpec;
  epoch: bigint | null;
  adopt: Adopt[];
}

export interface RollbackPorts {
  catalog: GridCatalog;
  storeOf(clusterId: string): string | undefined;
  /** RestoreGridJob on one cluster (retried while it is busy). */
  restore(clusterId: string, call: RestoreCall): Promise<void>;
}

export interface RollbackResult {
  plan: Extract<GridRecoveryPlan, { ok: true }>;
  line: RecoveryLine | null;
  /** Lines passed over, newest first, and why. */
  passedOver: string[];
}

export async function rollBack(p: RollbackPorts, job: GridJob, lost: ReadonlySet<string>, free: ReadonlyMap<string, number>): Promise<RollbackResult> {
  const before = new Map(job.clusters);
  const lines = [...p.catalog.linesOf(job.jobId)].reverse();
  const passedOver: string[] = [];
  for (const line of lines.length === 0 ? [null] : lines.slice(0, MAX_LINES_TRIED)) {
    const named = new Set([...before.values(), ...Object.values(line?.unitClusters ?? {}), ...Object.keys(line?.clusterEpochs ?? {})]);
    const stores = new Map<string, string>();
    for (const id of named) {
      const dir = p.storeOf(id);
      if (dir) stores.set(id, dir);
    }
    const plan = planGridRecovery({ clusters: before, lost, line, free, stores });
    if (!plan.ok) throw new GridError('resource-exhausted', plan.reason);
    // The plan is recorded first, and every cluster in it is named in heartbeat answers (its lease) from now on.
    job.clusters = plan.clusters;
    await p.catalog.saveJob(job.record());
    const results = await Promise.all([...plan.restores].map(async ([clusterId, r]): Promise<ClusterRestoreResult> => {
      try {
        await p.restore(clusterId, {
          jobId: job.jobId,
          job: { ...job.spec, units: job.spec.units.filter((u) => r.units.includes(u.unitId)), checkpointIntervalMs: 0 },
          epoch: r.epoch,
          adopt: r.adopt,
        });
        return { clusterId, outcome: 'ok', message: '' };
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        const dataLoss = code === grpcStatus.DATA_LOSS || code === grpcStatus.NOT_FOUND;
        return { clusterId, outcome: dataLoss ? 'data-loss' : 'error', message: err instanceof Error ? err.message : String(err) };
      }
    }));
    const verdict = judgeLine(line?.gridEpoch ?? null, results);
    if (verdict.kind === 'fail') throw new GridError('unavailable', verdict.reason);
    if (verdict.kind === 'restored') {
      if (passedOver.length > 0 && line) await p.catalog.dropAbove(job.jobId, line.gridEpoch);
      return { plan, line, passedOver };
    }
    passedOver.push(verdict.reason);
  }
  throw new GridError('data-loss', `no recovery line of job ${job.jobId} restores (${Math.min(lines.length, MAX_LINES_TRIED)} tried): ${passedOver.join('; ')}`);
}
