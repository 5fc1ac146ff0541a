import { status as grpcStatus } from '@grpc/grpc-js';
import { GridError } from '../common/errors.js';
import type { SkippedEpoch } from '../store/walk-back.js';
import { afterRestoreFailure, MAX_RECOVERY_ATTEMPTS, type RestoreFailure } from './core/node-recovery.js';
import { moveFailedNode } from './core/placement.js';
import { chooseRestoreEpoch } from './epoch-choice.js';
import { restoreNode } from './job-restore.js';
import type { ClusterJob } from './cluster-job.js';
import type { ClusterCoordinator } from './coordinator.js';
import { sleep } from '../runtime/timers.js';

// The shell of a node recovery (decisions in core/node-recovery.ts): wait
// for the verdict on any node of the job the detector doubts, move the lost
// nodes' units to spares with room, wait until their leases have lapsed,
// choose the epoch every node restores (epoch-choice.ts), restore. A target
// that dies on the way is lost too and the recovery plans again; an epoch
// that a node cannot load is passed over.

export interface NodeRecoveryResult {
  /** Lost nodes whose units moved, and where to. */
  moved: Array<{ from: string; to: string }>;
  epoch: bigint | null;
  skipped: SkippedEpoch[];
  leaseWaitMs: number;
  attempts: number;
}

/** How long a recovery waits for the verdict on a suspected node before it goes on without it. */
const MAX_SUSPECT_WAIT_MS = 5_000;

/** Null when the recovery was overtaken (fenced, replaced) on the way. */
export async function recoverNodes(c: ClusterCoordinator, job: ClusterJob, current: () => boolean): Promise<NodeRecoveryResult | null> {
  const bad = new Map<bigint, string>();
  const moved: Array<{ from: string; to: string }> = [];
  let leaseWaitMs = 0;
  for (let attempt = 1; ; attempt++) {
    // A suspected node may be dying: no placing onto it, no restoring there, before its verdict.
    await c.untilNotSuspected(job.nodes(), MAX_SUSPECT_WAIT_MS);
    const lost = job.nodes().filter((n) => job.lostNodes.has(n));
    await c.stopOn(job.jobId, job.nodes().filter((n) => !lost.includes(n)));
    for (const failed of lost) {
      // A node whose old parts now stand for another node cannot hold new ones until a full epoch.
      const room = c.capacities().filter((n) => !job.writerElsewhere(n.nodeId) && !job.lostNodes.has(n.nodeId));
      const m = moveFailedNode(job.placement, failed, room);
      job.placement = m.placement;
      job.moveHolder(failed, m.spareNodeId);
      moved.push({ from: failed, to: m.spareNodeId });
    }
    // The lost nodes' units must be dead before they run elsewhere (fenced ones are already).
    leaseWaitMs += await untilLeasesLapsed(c, [...job.lostNodes]);
    if (!current()) return null;
    // Lost meanwhile (a verdict during the lease wait): plan again.
    const gone = job.nodes().filter((n) => job.lostNodes.has(n) || (c.nodes.get(n)?.verdict ?? 'failed') === 'failed');
    if (gone.length > 0) {
      if (attempt >= MAX_RECOVERY_ATTEMPTS) throw new GridError('unavailable', `gave up after ${attempt} attempts: nodes ${gone.join(', ')} were lost meanwhile`);
      for (const n of gone) job.lostNodes.add(n);
      continue;
    }
    const choice = await chooseRestoreEpoch(c.settings.storeDir, job, bad);
    const failure = await restoreAll(c, job, choice.epoch);
    if (failure === null) return { moved, epoch: choice.epoch, skipped: choice.skipped, leaseWaitMs, attempts: attempt };
    if (!current()) return null;
    const step = afterRestoreFailure(failure, attempt);
    c.log.warn({ jobId: job.jobId, attempt, step }, 'a restore of the recovery failed; planning again');
    if (step.kind === 'fail') throw new GridError('unavailable', step.reason);
    if (step.kind === 'lose-node') job.lostNodes.add(step.nodeId);
    else bad.set(step.epoch, step.reason);
  }
}

/** Restores every node; the first failure, or null. */
async function restoreAll(c: ClusterCoordinator, job: ClusterJob, epoch: bigint | null): Promise<RestoreFailure | null> {
  for (const nodeId of job.nodes()) {
    try {
      await restoreNode(c, job, nodeId);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const unreachable = code === grpcStatus.UNAVAILABLE || code === grpcStatus.DEADLINE_EXCEEDED || (err instanceof GridError && err.kind === 'unavailable');
      const dataLoss = code === grpcStatus.DATA_LOSS || code === grpcStatus.NOT_FOUND;
      return {
        nodeId, epoch,
        kind: unreachable ? 'unreachable' : dataLoss ? 'data-loss' : 'other',
        verdict: c.nodes.get(nodeId)?.verdict ?? 'unregistered',
        message: err instanceof Error ? err.message : String(err),
      };
    }
  }
  return null;
}

/** Waits until no lease these nodes held can still hold; returns how long it waited. */
async function untilLeasesLapsed(c: ClusterCoordinator, nodes: readonly string[]): Promise<number> {
  let waited = 0;
  for (;;) {
    const wait = Math.max(0, ...nodes.map((n) => c.leaseSafeAt(n) - c.runtime.clock.nowMs()));
    if (wait <= 0) return waited;
    waited += wait;
    await sleep(c.runtime.timers, wait);
  }
}
