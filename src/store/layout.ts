// Where the checkpoint store keeps things, and the fixed sizes it relies on.
// One place decides every path so writer, reader and catalog cannot disagree:
//   <storeDir>/<jobId>/epoch-<epoch, 20 digits>/{<nodeId>.pages, <nodeId>.table, MANIFEST.json}
// Invariants:
//   1. Every name that becomes a path component passes checkName (no "..", no "/").
//   2. Epoch directory names sort lexically in epoch order (zero padded to the
//      20 digits of the largest u64), and parse back to exactly one epoch.

import * as path from 'node:path';
import { invalidArgument } from '../common/errors.js';
import { checkName } from '../common/names.js';

export const PAGE_BYTES = 4096;
export const MAX_EPOCH = (1n << 64n) - 1n;
/** Data is written and read in chunks of this size: large sequential I/O, bounded memory per call. */
export const IO_CHUNK_BYTES = 32 * 1024 * 1024;
/** A manifest larger than this is refused on write and treated as invalid on read. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
/** Bounds the container list of a manifest and of a page table header. */
export const MAX_CONTAINERS = 65_535;

export const MANIFEST_FILE = 'MANIFEST.json';
export const MANIFEST_TMP_FILE = 'MANIFEST.json.tmp';
const EPOCH_DIR_PATTERN = /^epoch-(\d{20})$/;

export function checkEpoch(what: string, epoch: bigint): bigint {
  if (typeof epoch !== 'bigint' || epoch < 0n || epoch > MAX_EPOCH) {
    throw invalidArgument(`bad ${what} ${String(epoch)}: expected a bigint from 0 to 2^64-1`);
  }
  return epoch;
}

export function epochDirName(epoch: bigint): string {
  return `epoch-${checkEpoch('epoch', epoch).toString().padStart(20, '0')}`;
}

/** The epoch a directory entry names, or null when the entry is not an epoch directory. */
export function parseEpochDirName(name: string): bigint | null {
  const m = EPOCH_DIR_PATTERN.exec(name);
  if (!m) return null;
  const epoch = BigInt(m[1] ?? '');
  return epoch <= MAX_EPOCH ? epoch : null;
}

export function jobDir(storeDir: string, jobId: string): string {
  return path.join(path.resolve(storeDir), checkName('job id', jobId));
}

export function epochDir(storeDir: string, jobId: string, epoch: bigint): string {
  return path.join(jobDir(storeDir, jobId), epochDirName(epoch));
}

export function dataFileName(nodeId: string): string {
  return `${checkName('node id', nodeId)}.pages`;
}

export function tableFileName(nodeId: string): string {
  return `${checkName('node id', nodeId)}.table`;
}
