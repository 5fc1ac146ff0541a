import type * as pb from '../gen/gridckpt/v1/node_agent.js';
import type { EpochInfo } from '../gen/gridckpt/v1/common.js';
import { required } from '../wire/codec.js';
import type { PageWrite } from '../gen/gridckpt/v1/unit.js';
import { invalidArgument } from '../common/errors.js';
import type { EpochManifest } from '../store/index.js';
import type { PageWriteOp } from './memory/page-memory.js';
import type { AgentStatus, JobView } from './agent.js';
import type { JobSpec } from './job-spec.js';

export { required, fenceFromPb, partInfoToPb, partInfoFromPb } from '../wire/codec.js';

// Wire ↔ domain for the node tier. Decoding checks what protobuf cannot
// (required messages, 64-bit ranges); validation of values is the domain's.


export function jobSpecFromPb(p: pb.JobSpec): JobSpec {
  return {
    jobId: p.jobId,
    units: p.units.map((u) => ({ unitId: u.unitId, command: u.command, args: u.args, env: { ...u.env } })),
    checkpointIntervalMs: p.checkpointIntervalMs,
    fullEvery: p.fullEvery,
  };
}

export function jobSpecToPb(s: JobSpec): pb.JobSpec {
  return {
    jobId: s.jobId,
    units: s.units.map((u) => ({ unitId: u.unitId, command: u.command, args: u.args, env: u.env })),
    checkpointIntervalMs: s.checkpointIntervalMs,
    fullEvery: s.fullEvery,
  };
}

export function pageWriteFromPb(w: PageWrite, index: number): PageWriteOp {
  const op = w.op;
  if (op === undefined) throw invalidArgument(`write ${index} has neither data nor add_i64`);
  return {
    container: w.container,
    page: w.page,
    offset: w.offset,
    op: op.$case === 'data' ? { kind: 'data', data: op.value } : { kind: 'add-i64', delta: op.value },
  };
}

/** Epoch 0 on the wire means "none" / "latest". */
export function epochFromPb(epoch: bigint): bigint | null {
  return epoch === 0n ? null : epoch;
}

export function epochInfoToPb(m: EpochManifest, chainLength: number): EpochInfo {
  const pageCount = m.parts.reduce((n, p) => n + p.pageCount, 0);
  const dataBytes = m.parts.reduce((n, p) => n + p.dataBytes, 0);
  return {
    jobId: m.jobId,
    epoch: m.epoch,
    parentEpoch: m.parentEpoch ?? 0n,
    full: m.full,
    pageCount: BigInt(pageCount),
    dataBytes: BigInt(dataBytes),
    digest: m.digest,
    createdUnixMs: BigInt(m.createdUnixMs),
    chainLength,
  };
}

/** Chain lengths for a list of committed manifests (parents are in the list). */
export function chainLengths(manifests: EpochManifest[]): Map<bigint, number> {
  const byEpoch = new Map(manifests.map((m) => [m.epoch, m]));
  const lengths = new Map<bigint, number>();
  for (const m of manifests) {
    let n = 1;
    let parent = m.parentEpoch;
    while (parent !== null && n <= manifests.length) {
      n += 1;
      parent = byEpoch.get(parent)?.parentEpoch ?? null;
    }
    lengths.set(m.epoch, n);
  }
  return lengths;
}

export function jobStatusToPb(j: JobView): pb.JobStatus {
  return {
    jobId: j.spec.jobId,
    state: j.state,
    units: j.units.map((u) => ({
      unitId: u.unitId,
      pid: u.pid,
      state: u.state,
      exitCode: u.exitCode ?? -1,
      signal: u.signal ?? '',
      starts: u.starts,
    })),
    lastEpoch: j.lastEpoch ?? 0n,
    containers: j.containers.map((c) => ({ name: c.name, pageCount: c.pageCount, pagesChanged: c.pagesChanged })),
    checkpointsCommitted: BigInt(j.committed),
    checkpointsFailed: BigInt(j.failed),
    lastError: j.lastError,
  };
}

export function statusToPb(s: AgentStatus, extra: { dataDir: string; storeDir: string; unitSocket: string }): pb.StatusResponse {
  return {
    nodeId: s.nodeId,
    incarnation: s.incarnation,
    freezer: s.freezer,
    memory: {
      budgetBytes: BigInt(s.memory.budgetBytes),
      framesTotal: s.memory.framesTotal,
      framesUsed: s.memory.framesUsed,
      pagesTotal: BigInt(s.memory.pagesTotal),
      pagesResident: BigInt(s.memory.pagesResident),
      pagesSwapped: BigInt(s.memory.pagesSwapped),
      swapOuts: BigInt(s.memory.swapOuts),
      swapIns: BigInt(s.memory.swapIns),
    },
    jobs: s.jobs.map(jobStatusToPb),
    dataDir: extra.dataDir,
    storeDir: extra.storeDir,
    unitSocket: extra.unitSocket,
  };
}



