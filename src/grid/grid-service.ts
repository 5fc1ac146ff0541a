import { isAbsolute } from 'node:path';
import type { GridServiceServer, GridJobStatus, RecoveryLine as PbLine } from '../gen/gridckpt/v1/grid.js';
import { unary } from '../common/grpc-status.js';
import { checkName } from '../common/names.js';
import { GridError } from '../common/errors.js';
import { checkHostPort } from '../common/host-port.js';
import { required } from '../wire/codec.js';
import type { GridCoordinator } from './coordinator.js';
import type { RecoveryLine } from './catalog.js';
import type { EventHub } from '../runtime/event-hub.js';
import { serveWatch } from '../runtime/watch-stream.js';

// gRPC shell of the grid coordinator.

const LINES_SHOWN = 8;

function lineToPb(l: RecoveryLine): PbLine {
  return { jobId: l.jobId, gridEpoch: l.gridEpoch, clusterEpochs: { ...l.clusterEpochs }, committedUnixMs: BigInt(l.committedUnixMs), unitClusters: { ...l.unitClusters } };
}

function jobStatus(g: GridCoordinator, jobId: string): GridJobStatus {
  const job = g.jobs.get(jobId);
  const rec = g.catalog.jobRecords().find((r) => r.spec.jobId === jobId);
  const lines = g.catalog.linesOf(jobId);
  const s = job?.core.status();
  return {
    jobId,
    state: job?.state ?? rec?.state ?? 'unknown (from the catalog)',
    clusters: job ? Object.fromEntries(job.clusters) : {},
    lastGridEpoch: lines[lines.length - 1]?.gridEpoch ?? 0n,
    roundsCommitted: BigInt(s?.roundsCommitted ?? 0),
    roundsAborted: BigInt(s?.roundsAborted ?? 0),
    lastError: job?.lastError ?? rec?.lastError ?? '',
    lines: lines.slice(-LINES_SHOWN).map(lineToPb),
    recoveries: BigInt(job?.recoveries ?? rec?.recoveries ?? 0),
  };
}

export function gridServiceHandlers(g: GridCoordinator, hub: EventHub, onBug: (e: unknown) => void): GridServiceServer {
  return {
    watch: serveWatch(hub),
    registerCluster: unary((req) => {
      if (!isAbsolute(req.storeDir)) throw new GridError('invalid-argument', `store_dir ${JSON.stringify(req.storeDir)} must be an absolute path`);
      if (req.incarnation === 0n) throw new GridError('invalid-argument', 'incarnation must be at least 1');
      g.registerCluster({
        clusterId: checkName('cluster id', req.clusterId), incarnation: req.incarnation, address: checkHostPort('cluster address', req.address),
        storeDir: req.storeDir, agentLeaseMs: req.agentLeaseMs,
      });
      return { gridId: g.settings.gridId, heartbeatIntervalMs: g.settings.detector.heartbeatIntervalMs, leaseMs: g.settings.clusterLeaseMs };
    }, onBug),
    clusterHeartbeat: unary((req) => g.heartbeat(req.clusterId, req.incarnation, Number(req.seq)), onBug),
    submitGridJob: unary(async (req) => {
      const spec = required('job', req.job);
      checkName('job id', spec.jobId);
      const job = await g.submitJob(spec);
      return { job: jobStatus(g, job.jobId) };
    }, onBug),
    checkpointGridJob: unary(async (req) => {
      const job = g.job(checkName('job id', req.jobId));
      if (job.state !== 'running') throw new GridError('failed-precondition', `job ${req.jobId} is ${job.state}; it is not checkpointed now`);
      const outcome = await job.checkpointNext();
      if (outcome.kind === 'aborted') throw new GridError('aborted', `grid round ${outcome.epoch} aborted in ${outcome.phase}: ${outcome.reason}`);
      const line = g.catalog.latest(req.jobId)!;
      return { line: lineToPb(line), totalMs: outcome.timings.totalMs };
    }, onBug),
    gridStatus: unary(() => {
      const peers = new Map(g.detector.status().map((p) => [p.peer, p]));
      const jobIds = [...new Set([...g.jobs.keys(), ...g.catalog.jobs()])];
      return {
        gridId: g.settings.gridId,
        incarnation: g.settings.incarnation,
        clusters: [...g.clusters.values()].map((c) => ({
          clusterId: c.clusterId, incarnation: c.incarnation, address: c.address, verdict: c.verdict,
          phi: peers.get(c.clusterId)?.phi ?? 0, heartbeatAgeMs: peers.get(c.clusterId)?.lastHeartbeatAgeMs ?? 0, storeDir: c.storeDir,
        })),
        jobs: jobIds.map((id) => jobStatus(g, id)),
        failuresDetected: BigInt(g.failuresDetected),
        recoveries: BigInt(g.recoveries),
      };
    }, onBug),
  };
}
