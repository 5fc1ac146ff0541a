import type { Damaged } from '../common/errors.js';
import { status as grpcStatus } from '@grpc/grpc-js';
import { failpoint, failpointAsync } from '../common/failpoints.js';
import type { RestartPolicy } from '../protocol/job-spec.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import type { ClusterAnswer, ClusterCall } from '../protocol/messages.js';
import type { ClusterClient } from '../wire/cluster-client.js';

// One call of the grid supervisor core to a cluster, over gRPC: the core's
// domain request in, the cluster's answer out as the core's domain answer,
// or "unreachable" when the call did not reach the cluster or got no answer
// (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED). The core decides everything;
// this file only translates — the units' specs and the adopted clusters'
// store directories, which the core does not hold, go in here.

export type CallResult = { kind: 'answer'; answer: ClusterAnswer } | { kind: 'unreachable'; reason: string };

export interface ClusterCallTarget {
  client: ClusterClient;
  gridId: string;
  /** The job's whole spec; null when the shell does not have it. */
  spec(jobId: string): JobSpec | null;
  /** A cluster's store directory (its registration said); null if unknown. */
  storeDir(clusterId: string): string | null;
  /** The job's restart policy, as its submit named it; null: the default. */
  policy(jobId: string): RestartPolicy | null;
}

export async function performClusterCall(t: ClusterCallTarget, to: string, call: ClusterCall): Promise<CallResult> {
  const r = call.req;
  const fence = (epoch: bigint) => ({ clusterId: t.gridId, nodeId: 'grid', incarnation: call.fence.incarnation, leaderTerm: call.fence.term, epoch });
  const specFor = (units: string[]): JobSpec | null => {
    const spec = t.spec(r.jobId);
    return spec ? { ...spec, units: spec.units.filter((u) => units.includes(u.unitId)), checkpointIntervalMs: 0 } : null;
  };
  try {
    // Tests: one call held back after it was decided (a deposed leader's late message, docs/grid-ha.md).
    await failpointAsync('grid.hold-call');
    switch (r.kind) {
      case 'submitJob': {
        const job = specFor(r.units);
        if (!job) return refused(`job ${r.jobId}: the grid has no spec for it`);
        const policy = t.policy(r.jobId);
        await t.client.submitJob({ job, gridManaged: true, gridGen: BigInt(r.gen), gridLeaseMs: r.leaseMs, gridFence: fence(0n), ...(policy ? { restartPolicy: policy } : {}) });
        return ok();
      }
      case 'stopJob':
        await t.client.stopGridJob({ fence: fence(0n), jobId: r.jobId });
        return ok();
      case 'prepare': {
        const p = await t.client.prepareRound({ fence: fence(r.epoch), jobId: r.jobId, parentEpoch: r.parentEpoch ?? 0n, full: r.parentEpoch === null });
        return { kind: 'answer', answer: { kind: 'prepared', pages: Number(p.pages), bytes: Number(p.bytes), done: p.done } };
      }
      case 'commit': {
        failpoint('grid.before-commit'); // crash tests: every cluster prepared and holding, no decision sent
        const c = await t.client.commitRound({ fence: fence(r.epoch), jobId: r.jobId });
        return { kind: 'answer', answer: { kind: 'committed', epoch: c.epoch } };
      }
      case 'abort':
        await t.client.abortRound({ fence: fence(r.epoch), jobId: r.jobId, reason: 'aborted by the grid' });
        return ok();
      case 'restoreJob': {
        const job = specFor(r.units);
        if (!job) return refused(`job ${r.jobId}: the grid has no spec for it`);
        const adopt = [];
        for (const a of r.adopt) {
          const storeDir = t.storeDir(a.fromCluster);
          if (storeDir === null) return refused(`the store of cluster ${a.fromCluster} is unknown to this grid`);
          adopt.push({ fromCluster: a.fromCluster, storeDir, epoch: a.epoch ?? 0n, unitIds: a.units });
        }
        try {
          await t.client.restoreGridJob({ fence: fence(0n), jobId: r.jobId, job, epoch: r.epoch ?? 0n, adopt, gen: BigInt(r.gen), leaseMs: r.leaseMs, restartPolicy: t.policy(r.jobId) ?? undefined });
        } catch (err) {
          const code = (err as { code?: number }).code;
          const details = detailsOf(err);
          // A cluster busy with a recovery of its own answers ABORTED: asked again later.
          if (code === grpcStatus.ABORTED) return { kind: 'answer', answer: { kind: 'busy', reason: details } };
          if (code === grpcStatus.DATA_LOSS || code === grpcStatus.NOT_FOUND) return { kind: 'answer', answer: corruptOf(err, details, to, r.epoch) };
          throw err;
        }
        return ok();
      }
    }
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === grpcStatus.UNAVAILABLE || code === grpcStatus.DEADLINE_EXCEEDED || code === grpcStatus.CANCELLED) return { kind: 'unreachable', reason: detailsOf(err) };
    return refused(detailsOf(err));
  }
}

/** The cluster's trailers name the damaged epoch and the cluster whose store holds it; else its own, at the line's epoch. */
function corruptOf(err: unknown, details: string, cluster: string, epoch: bigint | null): ClusterAnswer {
  const damaged = (err as { damaged?: Damaged | null }).damaged ?? null;
  return { kind: 'corrupt', store: damaged?.where ?? cluster, epoch: damaged?.epoch ?? epoch ?? 0n, reason: details };
}

function detailsOf(err: unknown): string {
  return (err as { details?: string }).details ?? (err instanceof Error ? err.message : String(err));
}

function ok(): CallResult {
  return { kind: 'answer', answer: { kind: 'ok' } };
}

function refused(reason: string): CallResult {
  return { kind: 'answer', answer: { kind: 'refused', reason } };
}
