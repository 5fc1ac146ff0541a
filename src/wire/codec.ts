import type * as pb from '../gen/gridckpt/v1/node_agent.js';
import type { Fence as PbFence } from '../gen/gridckpt/v1/common.js';
import { checkName } from '../common/names.js';
import { invalidArgument } from '../common/errors.js';
import type { PartInfo } from '../store/index.js';

// Wire <-> domain pieces every tier shares. Decoding checks what protobuf
// cannot (required messages, 64-bit ranges); validation of values is the domain's.

/** Every inter-tier message names its sender, its incarnation and the epoch (CONVENTIONS 4). */
export interface Fence {
  clusterId: string;
  nodeId: string;
  incarnation: bigint;
  epoch: bigint;
}

export function required<T>(what: string, value: T | undefined): T {
  if (value === undefined) throw invalidArgument(`missing ${what}`);
  return value;
}

export function fenceFromPb(f: PbFence | undefined): Fence {
  const fence = required('fence', f);
  if (fence.epoch === 0n) throw invalidArgument('fence epoch must be at least 1');
  return {
    clusterId: checkName('cluster id', fence.clusterId),
    nodeId: checkName('coordinator node id', fence.nodeId),
    incarnation: fence.incarnation,
    epoch: fence.epoch,
  };
}

export function partInfoToPb(p: PartInfo): pb.PartInfo {
  return {
    nodeId: p.nodeId,
    dataFile: p.dataFile,
    tableFile: p.tableFile,
    dataBytes: BigInt(p.dataBytes),
    tableBytes: BigInt(p.tableBytes),
    pageCount: BigInt(p.pageCount),
    tableDigest: p.tableDigest,
  };
}

/** Back from the wire, for the coordinator that writes the manifest. */
export function partInfoFromPb(p: pb.PartInfo): PartInfo {
  const num = (what: string, v: bigint): number => {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument(`part ${what} ${v} is out of range`);
    return Number(v);
  };
  return {
    nodeId: checkName('node id', p.nodeId),
    dataFile: p.dataFile,
    tableFile: p.tableFile,
    dataBytes: num('data bytes', p.dataBytes),
    tableBytes: num('table bytes', p.tableBytes),
    pageCount: num('page count', p.pageCount),
    tableDigest: p.tableDigest,
  };
}
