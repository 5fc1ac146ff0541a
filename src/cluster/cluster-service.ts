import { isAbsolute } from 'node:path';
import type { ClusterServiceServer, ClusterJobStatus } from '../gen/gridckpt/v1/cluster.js';
import { unary } from '../common/grpc-status.js';
import { checkName } from '../common/names.js';
import { GridError } from '../common/errors.js';
import { checkHostPort } from '../common/host-port.js';
import { required } from '../wire/codec.js';
import type { ClusterCoordinator } from './coordinator.js';
import type { ClusterJob } from './cluster-job.js';
import type { EventHub } from '../runtime/event-hub.js';
import { serveWatch } from '../runtime/watch-stream.js';
import { jobReportsFromPb } from './codec.js';

// gRPC shell of the cluster coordinator.

const MAX_CAPACITY_UNITS = 4096;

export function jobStatusToPb(j: ClusterJob): ClusterJobStatus {
  const s = j.round.status();
  return {
    jobId: j.jobId,
    state: j.state,
    placements: [...j.placement].map(([unitId, nodeId]) => ({ unitId, nodeId })),
    lastEpoch: j.lastEpoch ?? 0n,
    roundsCommitted: BigInt(s.roundsCommitted),
    roundsAborted: BigInt(s.roundsAborted),
    recoveries: BigInt(j.recoveries),
    lastError: j.lastError,
    gridManaged: j.gridManaged,
  };
}

export function clusterServiceHandlers(c: ClusterCoordinator, hub: EventHub, onBug: (e: unknown) => void): ClusterServiceServer {
  return {
    watch: serveWatch(hub),
    registerNode: unary((req) => {
      const capacity = req.capacityUnits;
      if (capacity < 1 || capacity > MAX_CAPACITY_UNITS) {
        throw new GridError('invalid-argument', `bad capacity ${capacity}: expected 1 to ${MAX_CAPACITY_UNITS} units`);
      }
      c.registerNode({
        nodeId: checkName('node id', req.nodeId),
        incarnation: req.incarnation,
        address: checkHostPort('agent address', req.address),
        capacityUnits: capacity,
        labels: { ...req.labels },
      });
      return { clusterId: c.settings.clusterId, heartbeatIntervalMs: c.settings.detector.heartbeatIntervalMs, leaseMs: c.settings.agentLeaseMs };
    }, onBug),
    heartbeat: unary((req) => c.heartbeat(req.nodeId, req.incarnation, Number(req.seq), jobReportsFromPb(req.jobs), req.reportsJobs), onBug),
    reportJobs: unary((req) => c.reportJobs(req.nodeId, req.incarnation, jobReportsFromPb(req.jobs)), onBug),
    submitJob: unary(async (req) => {
      const spec = required('job', req.job);
      checkName('job id', spec.jobId);
      return { job: jobStatusToPb(await c.submitJob(spec, req.gridManaged)) };
    }, onBug),
    checkpointJob: unary(async (req) => {
      const outcome = await c.checkpointJob(checkName('job id', req.jobId));
      if (outcome.kind === 'aborted') throw new GridError('aborted', `round ${outcome.epoch} aborted in ${outcome.phase}: ${outcome.reason}`);
      return {
        epoch: {
          jobId: outcome.jobId, epoch: outcome.epoch, parentEpoch: outcome.parentEpoch ?? 0n, full: outcome.full,
          pageCount: BigInt(outcome.pages), dataBytes: BigInt(outcome.bytes), digest: '', createdUnixMs: BigInt(c.runtime.clock.wallMs()), chainLength: 0,
        },
        prepareMs: outcome.timings.prepareMs,
        commitMs: outcome.timings.commitMs,
        totalMs: outcome.timings.totalMs,
      };
    }, onBug),
    prepareRound: unary(async (req) => {
      const fence = required('fence', req.fence);
      const r = await c.job(checkName('job id', req.jobId)).gridPrepare(fence.epoch, fence.incarnation, req.parentEpoch === 0n ? null : req.parentEpoch, req.full);
      return { epoch: fence.epoch, pages: BigInt(r.pages), bytes: BigInt(r.bytes) };
    }, onBug),
    commitRound: unary(async (req) => {
      const fence = required('fence', req.fence);
      await c.job(checkName('job id', req.jobId)).gridCommit(fence.epoch, fence.incarnation);
      return { epoch: fence.epoch };
    }, onBug),
    abortRound: unary((req) => {
      const fence = required('fence', req.fence);
      c.job(checkName('job id', req.jobId)).gridAbort(fence.epoch, fence.incarnation, req.reason);
      return {};
    }, onBug),
    restoreGridJob: unary(async (req) => {
      const fence = required('fence', req.fence);
      const spec = required('job', req.job);
      const jobId = checkName('job id', req.jobId);
      if (spec.jobId !== jobId) throw new GridError('invalid-argument', `job.job_id ${JSON.stringify(spec.jobId)} is not job_id ${JSON.stringify(jobId)}`);
      const job = await c.restoreGridJob({
        jobId,
        gridIncarnation: fence.incarnation,
        spec,
        epoch: req.epoch === 0n ? null : req.epoch,
        adopt: req.adopt.map((a) => {
          if (!isAbsolute(a.storeDir)) throw new GridError('invalid-argument', `adoption store_dir ${JSON.stringify(a.storeDir)} must be an absolute path`);
          return { fromCluster: checkName('cluster id', a.fromCluster), storeDir: a.storeDir, epoch: a.epoch === 0n ? null : a.epoch, unitIds: a.unitIds };
        }),
      });
      return { job: jobStatusToPb(job) };
    }, onBug),
    clusterStatus: unary(() => {
      const peers = new Map(c.detector.status().map((p) => [p.peer, p]));
      const placed = new Map<string, number>();
      for (const j of c.jobs.values()) for (const n of j.placement.values()) placed.set(n, (placed.get(n) ?? 0) + 1);
      return {
        clusterId: c.settings.clusterId,
        incarnation: c.settings.incarnation,
        nodes: [...c.nodes.values()].map((n) => ({
          nodeId: n.nodeId,
          incarnation: n.incarnation,
          address: n.address,
          verdict: n.verdict,
          phi: peers.get(n.nodeId)?.phi ?? 0,
          heartbeatAgeMs: peers.get(n.nodeId)?.lastHeartbeatAgeMs ?? 0,
          capacityUnits: n.capacityUnits,
          placedUnits: placed.get(n.nodeId) ?? 0,
        })),
        jobs: [...c.jobs.values()].map(jobStatusToPb),
        storeDir: c.settings.storeDir,
        failuresDetected: BigInt(c.failuresDetected),
      };
    }, onBug),
  };
}
