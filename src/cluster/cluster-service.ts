import { isAbsolute } from 'node:path';
import type { ClusterServiceServer, ClusterJobStatus } from '../gen/gridckpt/v1/cluster.js';
import { unary } from '../common/grpc-status.js';
import { checkName, quoteValue } from '../common/names.js';
import { GridError } from '../common/errors.js';
import { checkWireEpoch, MAX_MEMBER_INCARNATION } from '../protocol/bounds.js';
import { checkJobSpec, restartPolicyFromWire } from '../protocol/job-spec.js';
import type { Fence } from '../gen/gridckpt/v1/common.js';
import type { GridFence } from '../protocol/grid-fence.js';
import { checkHostPort } from '../common/host-port.js';
import { required } from '../wire/codec.js';
import type { ClusterShell } from './shell.js';
import type { EventHub } from '../runtime/event-hub.js';
import { serveWatch } from '../runtime/watch-stream.js';
import { jobReportsFromPb } from './codec.js';
import { jobActionFromWire } from '../wire/job-action.js';

// gRPC service of the cluster coordinator: each request goes to the shell
// (shell.ts), which asks the core; wire -> domain and back here.

const MAX_CAPACITY_UNITS = 4096;
/** A job's units in one cluster: the grid's bound on a whole job (each is a process on some node). */
const MAX_JOB_UNITS = 4_096;

export function jobStatusToPb(c: ClusterShell, jobId: string): ClusterJobStatus {
  const j = c.core.jobView(jobId);
  if (!j) throw new GridError('not-found', `unknown job ${quoteValue(jobId)} in cluster ${c.settings.clusterId}`);
  return {
    jobId,
    state: j.shownState,
    placements: [...j.placement].map(([unitId, nodeId]) => ({ unitId, nodeId })),
    lastEpoch: j.lastEpoch ?? 0n,
    roundsCommitted: BigInt(j.roundsCommitted),
    roundsAborted: BigInt(j.roundsAborted),
    recoveries: BigInt(j.recoveries),
    lastError: j.lastError,
    gridManaged: j.gridManaged,
  };
}

/** The largest leader term (an etcd revision) a grid fence may carry: 2^62, which no etcd reaches. */
const MAX_LEADER_TERM = 1n << 62n;

/** The grid's fence on a call, its numbers bounded (protocol/bounds.ts): no message can push a job's epochs to the end of their range. */
function gridFence(f: Fence | undefined, field = 'fence'): Fence & { grid: GridFence } {
  const fence = required(field, f);
  checkWireEpoch(`${field} epoch`, fence.epoch);
  if (fence.incarnation > MAX_MEMBER_INCARNATION) throw new GridError('invalid-argument', `${field} incarnation ${fence.incarnation} is out of range: expected at most 2^32`);
  if (fence.leaderTerm > MAX_LEADER_TERM) throw new GridError('invalid-argument', `${field} leader_term ${fence.leaderTerm} is out of range: expected at most 2^62`);
  return { ...fence, grid: { term: fence.leaderTerm, incarnation: fence.incarnation } };
}

export function clusterServiceHandlers(c: ClusterShell, hub: EventHub, onBug: (e: unknown) => void): ClusterServiceServer {
  return {
    watch: serveWatch(hub),
    registerNode: unary(async (req) => {
      const capacity = req.capacityUnits;
      if (capacity < 1 || capacity > MAX_CAPACITY_UNITS) {
        throw new GridError('invalid-argument', `bad capacity ${capacity}: expected 1 to ${MAX_CAPACITY_UNITS} units`);
      }
      await c.registerNode({
        nodeId: checkName('node id', req.nodeId),
        incarnation: req.incarnation,
        address: checkHostPort('agent address', req.address),
        capacityUnits: capacity,
        labels: { ...req.labels },
      });
      return { clusterId: c.settings.clusterId, heartbeatIntervalMs: c.settings.core.heartbeatIntervalMs, leaseMs: c.settings.core.agentLeaseMs };
    }, onBug),
    heartbeat: unary((req) => c.heartbeat(checkName('node id', req.nodeId), req.incarnation, Number(req.seq), jobReportsFromPb(req.jobs)), onBug),
    reportJobs: unary((req) => c.reportJobs(checkName('node id', req.nodeId), req.incarnation, jobReportsFromPb(req.jobs)), onBug),
    submitJob: unary(async (req) => {
      const spec = required('job', req.job);
      // The schema every tier shares (protocol/job-spec.ts): a spec an agent would refuse is refused here, naming the field.
      const policy = checkJobSpec({ ...spec, restartPolicy: restartPolicyFromWire(req.restartPolicy) }, { maxUnits: MAX_JOB_UNITS }).restartPolicy;
      const fence = req.gridManaged && req.gridFence ? gridFence(req.gridFence, 'grid_fence').grid : null;
      await c.submitJob(spec, req.gridManaged, Number(req.gridGen), req.gridLeaseMs, policy, fence);
      return { job: jobStatusToPb(c, spec.jobId) };
    }, onBug),
    checkpointJob: unary(async (req) => {
      const jobId = checkName('job id', req.jobId);
      const startedMs = c.runtime.clock.nowMs();
      const o = await c.checkpointJob(jobId);
      const totalMs = c.runtime.clock.nowMs() - startedMs;
      return {
        epoch: {
          jobId, epoch: o.epoch, parentEpoch: o.parentEpoch ?? 0n, full: o.full,
          pageCount: BigInt(o.pages), dataBytes: BigInt(o.bytes), digest: '', createdUnixMs: BigInt(c.runtime.clock.wallMs()), chainLength: 0,
        },
        prepareMs: o.timings.prepareMs,
        commitMs: o.timings.commitMs,
        // The round's own time, and what the request waited besides (the driver's queue) shows as the difference.
        totalMs: Math.max(o.timings.totalMs, totalMs),
      };
    }, onBug),
    controlJob: unary(async (req) => {
      const jobId = checkName('job id', req.jobId);
      const action = jobActionFromWire(req.action);
      const epoch = checkWireEpoch('epoch', req.epoch);
      if (action !== 'restore' && epoch !== 0n) throw new GridError('invalid-argument', `epoch is for restore only (job ${action})`);
      const a = await c.controlJob(jobId, action, epoch === 0n ? null : epoch);
      if (a.kind === 'controlled') return { state: a.state, epoch: 0n, skipped: [], unconfirmedNodes: a.unconfirmed };
      return { state: c.core.jobState(jobId) ?? 'running', epoch: a.epoch ?? 0n, skipped: (a.skipped ?? []).map((x) => ({ epoch: x.epoch, reason: x.reason })), unconfirmedNodes: [] };
    }, onBug),
    prepareRound: unary(async (req) => {
      const fence = gridFence(req.fence);
      const parent = checkWireEpoch('parent_epoch', req.parentEpoch);
      const r = await c.gridPrepare(checkName('job id', req.jobId), fence.epoch, fence.grid, parent === 0n ? null : parent, req.full);
      return { epoch: fence.epoch, pages: BigInt(r.pages), bytes: BigInt(r.bytes), done: r.done };
    }, onBug),
    commitRound: unary(async (req) => {
      const fence = gridFence(req.fence);
      await c.gridCommit(checkName('job id', req.jobId), fence.epoch, fence.grid);
      return { epoch: fence.epoch };
    }, onBug),
    abortRound: unary(async (req) => {
      const fence = gridFence(req.fence);
      await c.gridAbort(checkName('job id', req.jobId), fence.epoch, fence.grid);
      return {};
    }, onBug),
    restoreGridJob: unary(async (req) => {
      const fence = gridFence(req.fence);
      const spec = required('job', req.job);
      const jobId = checkName('job id', req.jobId);
      if (spec.jobId !== jobId) throw new GridError('invalid-argument', `job.job_id ${quoteValue(spec.jobId)} is not job_id ${quoteValue(jobId)}`);
      const restartPolicy = checkJobSpec({ ...spec, restartPolicy: restartPolicyFromWire(req.restartPolicy) }, { maxUnits: MAX_JOB_UNITS }).restartPolicy;
      await c.restoreGridJob({
        restartPolicy,
        jobId,
        gridFence: fence.grid,
        gen: Number(req.gen),
        leaseMs: req.leaseMs,
        spec,
        epoch: checkWireEpoch('epoch', req.epoch) === 0n ? null : req.epoch,
        adopt: req.adopt.map((a) => {
          if (!isAbsolute(a.storeDir)) throw new GridError('invalid-argument', `adoption store_dir ${JSON.stringify(a.storeDir)} must be an absolute path`);
          return { fromCluster: checkName('cluster id', a.fromCluster), storeDir: a.storeDir, epoch: checkWireEpoch('adopt epoch', a.epoch) === 0n ? null : a.epoch, units: a.unitIds };
        }),
      });
      return { job: jobStatusToPb(c, jobId) };
    }, onBug),
    stopGridJob: unary(async (req) => {
      const fence = gridFence(req.fence);
      await c.gridStop(checkName('job id', req.jobId), fence.grid);
      return {};
    }, onBug),
    clusterStatus: unary(() => ({
      clusterId: c.settings.clusterId,
      incarnation: c.settings.incarnation,
      nodes: c.core.nodesView().map((n) => ({
        nodeId: n.nodeId,
        incarnation: n.incarnation,
        address: c.nodes.get(n.nodeId)?.address ?? '',
        verdict: n.verdict,
        phi: n.phi,
        heartbeatAgeMs: n.silenceMs,
        capacityUnits: n.capacityUnits,
        placedUnits: n.placedUnits,
      })),
      jobs: c.core.jobIds().map((id) => jobStatusToPb(c, id)),
      storeDir: c.settings.storeDir,
      failuresDetected: BigInt(c.core.failuresDetected),
      gridLeaderTerm: c.core.gridFence().term,
      gridIncarnation: c.core.gridFence().incarnation,
      staleGridCalls: BigInt(c.core.staleGridCalls),
    }), onBug),
  };
}
