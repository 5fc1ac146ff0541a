import { isAbsolute } from 'node:path';
import type { NodeAgentServiceServer, RestoreSource as RestoreSourcePb } from '../gen/gridckpt/v1/node_agent.js';
import type { RestoreSource } from './restore-runner.js';
import { unary } from '../common/grpc-status.js';
import { checkName } from '../common/names.js';
import { GridError } from '../common/errors.js';
import { checkWireEpoch, MAX_MEMBER_INCARNATION } from '../protocol/bounds.js';
import type { Fence as PbFence } from '../gen/gridckpt/v1/common.js';
import type { Fence } from '../wire/codec.js';
import type { NodeAgent } from './agent.js';
import type { StartGens } from './job-reports.js';
import type { EventHub } from '../runtime/event-hub.js';
import { serveWatch } from '../runtime/watch-stream.js';
import { verifyEpoch, listCommitted } from '../store/index.js';
import {
  required, jobSpecFromPb, fenceFromPb, partInfoToPb, jobStatusToPb, epochFromPb, epochInfoToPb, chainLengths, statusToPb,
} from './codec.js';

// gRPC shell of the node agent's service.

const MAX_WAIT_MS = 3_600_000;

/** starts: where a start's gen is recorded once it returned (the heartbeat reports carry it, job-reports.ts). */
export function agentServiceHandlers(agent: NodeAgent, hub: EventHub, starts: StartGens, onBug: (e: unknown) => void): NodeAgentServiceServer {
  const { config } = agent.deps;
  return {
    watch: serveWatch(hub),
    startJob: unary(async (req, call) => {
      const spec = jobSpecFromPb(required('job', req.job));
      const view = await agent.startJob(spec, { leaseBound: req.leaseBound, fresh: req.fresh, ...deadlineOf(call) });
      starts.started(spec.jobId, req.gen);
      return { job: jobStatusToPb(view) };
    }, onBug),
    stopJob: unary(async (req) => ({ job: jobStatusToPb(await agent.stopJob(req.jobId)) }), onBug),
    deleteJob: unary(async (req) => ({ job: jobStatusToPb(await agent.deleteJob(req.jobId)) }), onBug),
    checkpoint: unary(async (req) => {
      const r = await agent.checkpoint(req.jobId, req.full);
      return {
        epoch: epochInfoToPb(r.manifest, r.chainLength),
        freezeWindowMs: r.freezeWindowMs,
        freezeMs: r.freezeMs,
        snapshotMs: r.snapshotMs,
        thawMs: r.thawMs,
        writeMs: r.writeMs,
        pagesSwappedIn: BigInt(r.pagesSwappedIn),
      };
    }, onBug),
    listEpochs: unary(async (req) => {
      checkName('job id', req.jobId);
      const manifests = await listCommitted(config.storeDir, req.jobId);
      const lengths = chainLengths(manifests);
      return { epochs: manifests.map((m) => epochInfoToPb(m, lengths.get(m.epoch) ?? 1)) };
    }, onBug),
    verifyEpoch: unary(async (req) => {
      checkName('job id', req.jobId);
      let epoch = epochFromPb(checkWireEpoch('epoch', req.epoch));
      if (epoch === null) {
        const committed = await listCommitted(config.storeDir, req.jobId);
        const newest = committed[committed.length - 1];
        if (!newest) throw new GridError('not-found', `job ${req.jobId} has no committed epoch in ${config.storeDir}`);
        epoch = newest.epoch;
      }
      const r = await verifyEpoch(config.storeDir, req.jobId, epoch);
      return { ok: r.ok, epoch: r.epoch, pagesChecked: BigInt(r.pagesChecked), errors: r.errors };
    }, onBug),
    restore: unary(async (req, call) => {
      checkName('job id', req.jobId);
      const r = await agent.restore(req.jobId, epochFromPb(checkWireEpoch('epoch', req.epoch)), {
        ...(req.partsFrom.length > 0 ? { parts: new Set(req.partsFrom.map((n) => checkName('node id', n))) } : {}),
        ...(req.job ? { spec: jobSpecFromPb(req.job) } : {}),
        ...(req.sources.length > 0 ? { sources: req.sources.map(restoreSourceFromPb) } : {}),
      }, { leaseBound: req.leaseBound, ...deadlineOf(call) });
      starts.started(req.jobId, req.gen);
      return {
        epoch: epochInfoToPb(r.manifest, r.chainLength),
        skipped: r.skipped.map((s) => ({ epoch: s.epoch, reason: s.reason })),
        pagesLoaded: BigInt(r.pagesLoaded),
        job: r.job ? jobStatusToPb(r.job) : undefined,
      };
    }, onBug),
    status: unary(() => statusToPb(agent.status(), config), onBug),
    waitJob: unary(async (req) => {
      if (req.timeoutMs < 1 || req.timeoutMs > MAX_WAIT_MS) {
        throw new GridError('invalid-argument', `bad timeout_ms ${req.timeoutMs}: expected 1 to ${MAX_WAIT_MS}`);
      }
      const r = await agent.waitJob(req.jobId, req.timeoutMs);
      return { job: jobStatusToPb(r.job), done: r.done };
    }, onBug),
    prepareCheckpoint: unary(async (req) => {
      const r = await agent.prepareCheckpoint(boundedFence(req.fence), req.jobId, epochFromPb(checkWireEpoch('parent_epoch', req.parentEpoch)), req.full, epochFromPb(checkWireEpoch('last_committed', req.lastCommitted)));
      // A read-only vote carries its durable part and containers, as COMMIT's answer would.
      const part = r.readOnly ? partInfoToPb(r.readOnly.part) : undefined;
      return { epoch: r.epoch, pages: BigInt(r.pages), bytes: BigInt(r.bytes), freezeWindowMs: r.freezeWindowMs, digest: r.digest, done: r.done, part, containers: r.readOnly?.containers ?? [] };
    }, onBug),
    commitCheckpoint: unary(async (req) => {
      const r = await agent.commitCheckpoint(boundedFence(req.fence), req.jobId);
      return { epoch: r.epoch, part: partInfoToPb(r.part), containers: r.containers, writeMs: r.writeMs };
    }, onBug),
    abortCheckpoint: unary(async (req) => ({
      dropped: await agent.abortCheckpoint(boundedFence(req.fence), req.jobId, req.reason),
    }), onBug),
    readContainer: unary((req) => {
      const data = agent.readContainer(req.jobId, req.container, req.firstPage, req.pageCount);
      return { data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
    }, onBug),
  };
}

/** A call's deadline, if it has a finite one (grpc-js does not cancel a handler past it; the core refuses the start). */
function deadlineOf(call: { getDeadline?(): Date | number }): { deadline?: number } {
  const d = call.getDeadline?.();
  const ms = d instanceof Date ? d.getTime() : d;
  return ms !== undefined && Number.isFinite(ms) ? { deadline: ms } : {};
}

/**
 * A coordinator's fence, its numbers bounded (protocol/bounds.ts): an epoch or incarnation at the end of the
 * 64-bit range would be the job's (or the coordinator's) newest for good, and nothing could follow it.
 */
function boundedFence(f: PbFence | undefined): Fence {
  const fence = fenceFromPb(f);
  checkWireEpoch('fence epoch', fence.epoch);
  if (fence.incarnation > MAX_MEMBER_INCARNATION) throw new GridError('invalid-argument', `fence incarnation ${fence.incarnation} is out of range: expected at most 2^32`);
  return fence;
}

function restoreSourceFromPb(s: RestoreSourcePb): RestoreSource {
  if (!isAbsolute(s.storeDir)) throw new GridError('invalid-argument', `restore source store_dir ${JSON.stringify(s.storeDir)} must be an absolute path`);
  const epoch = epochFromPb(checkWireEpoch('restore source epoch', s.epoch));
  if (epoch === null) throw new GridError('invalid-argument', `restore source ${s.storeDir}: epoch must be set`);
  if (s.partsFrom.length === 0) throw new GridError('invalid-argument', `restore source ${s.storeDir}: parts_from must name at least one node`);
  return { storeDir: s.storeDir, epoch, parts: new Set(s.partsFrom.map((n) => checkName('node id', n))) };
}
