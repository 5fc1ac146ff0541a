// Writes an epoch in the two steps of the round: each node agent writes its
// part (writeNodePart: data + page table, durable, not yet visible), then the
// coordinator, once every part is durable, commits the epoch (commitEpoch:
// the manifest, atomically). Until the manifest's rename, nothing written here
// is ever restored (ARCHITECTURE §3 invariant 3, atomic commit).
// Invariants:
//   1. The .pages file is the staging buffer byte for byte, written in
//      IO_CHUNK_BYTES chunks. Its CRC32Cs and the table are computed while the
//      data file's fsync is in flight, so checksumming hides behind the disk
//      (measured: overlapping it with the writes instead competes with the
//      kernel's copy for the CPU and was slower).
//   2. A part returns only after its data file, table file and epoch directory
//      entry are fsynced; the PartInfo it returns is what the manifest records.
//   3. A part is never written into a committed epoch, and commitEpoch writes
//      MANIFEST.json.tmp, fsyncs it, renames it and fsyncs the directory, in
//      that order: a crash before the rename leaves the epoch uncommitted.
//      A rename that loses the manifest's name to a removal (epoch-removal.ts)
//      fails with failed-precondition: that epoch is gone, never committed.
//   4. commitEpoch refuses an epoch not above every committed one, a parent that
//      is not committed, and part files whose sizes differ from the PartInfo.

import { stat } from 'node:fs/promises';
import * as path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { GridError, invalidArgument } from '../common/errors.js';
import { failpoint, failpointAsync } from '../common/failpoints.js';
import { checkName } from '../common/names.js';
import { ensureDirDurable, fsyncPath, isErrno, renameDurable, writeFileSynced, writeThenSync } from '../runtime/durable-fs.js';
import { listCommitted } from './epoch-catalog.js';
import {
  IO_CHUNK_BYTES, MANIFEST_FILE, MANIFEST_TMP_FILE, MAX_CONTAINERS, MAX_MANIFEST_BYTES, PAGE_BYTES,
  checkEpoch, dataFileName, epochDir, tableFileName,
} from './layout.js';
import { buildManifest, encodeManifest, sha256Hex, type ContainerMeta, type EpochManifest, type PartInfo } from './manifest.js';
import { allocatePageTable, encodePageTable, type PageTable } from './page-table.js';

/** 1 MiB of pages per checksum slice: ~0.3 ms of CPU between turns of the event loop. */
const CHECKSUM_SLICE_PAGES = 256;
const MAX_U64 = (1n << 64n) - 1n;

export interface PartPage { container: string; page: number; version: bigint; stagingOffset: number }

export interface NodePartInput {
  storeDir: string;
  jobId: string;
  epoch: bigint;
  nodeId: string;
  /** Exactly pages.length x 4 KiB: every slot of it is one page of `pages`. */
  staging: Uint8Array;
  pages: PartPage[];
}

/** Everything the manifest records but its format tag and digest, and where to put it. */
export type CommitInput = Omit<EpochManifest, 'format' | 'digest'> & { storeDir: string };

export async function writeNodePart(input: NodePartInput): Promise<PartInfo> {
  const { storeDir, jobId, epoch, nodeId, staging } = input;
  const dir = epochDir(storeDir, jobId, epoch);
  const table = planPageTable(input);
  const manifest = await kindOf(path.join(dir, MANIFEST_FILE));
  if (manifest === 'file') {
    throw new GridError('failed-precondition', `epoch ${epoch} of job ${jobId} is already committed; node ${nodeId} cannot add a part to it`);
  }
  if (manifest === 'dir') {
    throw new GridError('failed-precondition', `epoch ${epoch} of job ${jobId} is being removed as incomplete; node ${nodeId} cannot add a part to it`);
  }
  await ensureDirDurable(dir);

  const dataFile = dataFileName(nodeId);
  const { tableBytes, tableDigest } = await writeThenSync(path.join(dir, dataFile), staging, IO_CHUNK_BYTES, async () => {
    await fillChecksums(table, staging);
    const encoded = encodePageTable(table);
    return { tableBytes: encoded, tableDigest: sha256Hex(encoded) };
  });
  failpoint('store.after-part-data');

  const tableFile = tableFileName(nodeId);
  await writeFileSynced(path.join(dir, tableFile), tableBytes);
  await fsyncPath(dir);
  failpoint('store.after-part');
  return { nodeId, dataFile, tableFile, dataBytes: staging.byteLength, tableBytes: tableBytes.byteLength, pageCount: table.count, tableDigest };
}

/**
 * CRC32C of every page, in slices of CHECKSUM_SLICE_PAGES with a turn of the
 * event loop between slices so the agent keeps answering (a 1 GiB part is
 * ~0.3 s of CRC). Runs during the data file's fsync.
 */
async function fillChecksums(table: PageTable, staging: Uint8Array): Promise<void> {
  for (let start = 0; start < table.count; start += CHECKSUM_SLICE_PAGES) {
    const end = Math.min(table.count, start + CHECKSUM_SLICE_PAGES);
    for (let i = start; i < end; i++) {
      const at = table.dataOffset[i]!;
      table.crc32c[i] = crc32c(staging.subarray(at, at + PAGE_BYTES));
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Validates the part's page list and lays out its table (CRCs are filled in once the data is written). */
function planPageTable(input: NodePartInput): PageTable {
  const { epoch, pages, staging } = input;
  checkEpoch('epoch', epoch);
  checkName('node id', input.nodeId);
  if (!(staging instanceof Uint8Array)) throw invalidArgument('staging must be a Uint8Array');
  if (!Array.isArray(pages) || pages.length > 2 ** 32 - 1) throw invalidArgument('pages must be an array of at most 2^32-1 pages');
  if (staging.byteLength !== pages.length * PAGE_BYTES) {
    throw invalidArgument(
      `staging holds ${staging.byteLength} bytes but ${pages.length} pages need exactly ${pages.length * PAGE_BYTES}: pass the used part of the buffer`,
    );
  }
  const containers: string[] = [];
  const containerIndex = new Map<string, number>();
  const table = allocatePageTable(epoch, containers, pages.length);
  const slotTaken = new Uint8Array(pages.length);
  const keys = new Float64Array(pages.length);
  let ascending = true; // the agent stages pages in container then page order: then no sort is needed
  for (let i = 0; i < pages.length; i++) {
    const p = pages[i]!;
    let c = containerIndex.get(p.container);
    if (c === undefined) {
      c = containers.length;
      containerIndex.set(p.container, c);
      containers.push(checkName('container', p.container));
      if (containers.length > MAX_CONTAINERS) throw invalidArgument(`part references more than ${MAX_CONTAINERS} containers`);
    }
    if (!Number.isInteger(p.page) || p.page < 0 || p.page > 2 ** 32 - 1) throw invalidArgument(`page ${p.container}#${p.page}: page number must be a u32`);
    if (typeof p.version !== 'bigint' || p.version < 0n || p.version > MAX_U64) {
      throw invalidArgument(`page ${p.container}#${p.page}: version must be a u64 bigint`);
    }
    const slot = p.stagingOffset / PAGE_BYTES;
    if (!Number.isInteger(slot) || slot < 0 || slot >= pages.length) {
      throw invalidArgument(`page ${p.container}#${p.page}: staging offset ${p.stagingOffset} is not a page-aligned offset inside staging`);
    }
    if (slotTaken[slot]) throw invalidArgument(`page ${p.container}#${p.page}: staging offset ${p.stagingOffset} is used by another page`);
    slotTaken[slot] = 1;
    keys[i] = c * 2 ** 32 + p.page;
    if (i > 0 && keys[i]! <= keys[i - 1]!) ascending = false;
    table.containerIndex[i] = c;
    table.page[i] = p.page;
    table.dataOffset[i] = p.stagingOffset;
    table.version[i] = p.version;
  }
  table.originEpoch.fill(epoch);
  if (!ascending) keys.sort();
  for (let i = 1; i < keys.length && !ascending; i++) {
    if (keys[i] === keys[i - 1]) {
      throw invalidArgument(`page ${containers[Math.floor(keys[i]! / 2 ** 32)]}#${keys[i]! % 2 ** 32} appears twice in the part`);
    }
  }
  return table;
}

export async function commitEpoch(input: CommitInput): Promise<EpochManifest> {
  const { storeDir, jobId, epoch } = input;
  failpoint('store.commit-fails'); // tests: a full or read-only store, where no manifest can be written
  const manifest = buildManifest({
    jobId, epoch, parentEpoch: input.parentEpoch, full: input.full, createdUnixMs: input.createdUnixMs,
    containers: input.containers, parts: input.parts, layout: input.layout,
  });
  const bytes = encodeManifest(manifest);
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw invalidArgument(`manifest of epoch ${epoch} would be ${bytes.byteLength} bytes, at most ${MAX_MANIFEST_BYTES}`);
  }
  await checkCommittable(manifest, storeDir);
  const dir = epochDir(storeDir, jobId, epoch);
  await ensureDirDurable(dir);
  for (const part of manifest.parts) {
    await checkSize(path.join(dir, part.dataFile), part.dataBytes, epoch);
    await checkSize(path.join(dir, part.tableFile), part.tableBytes, epoch);
  }
  failpoint('store.before-manifest');
  const tmp = path.join(dir, MANIFEST_TMP_FILE);
  try {
    await writeFileSynced(tmp, bytes);
    await failpointAsync('store.before-manifest-rename'); // async: a test can hold a commit here (wait)
    await renameDurable(tmp, path.join(dir, MANIFEST_FILE));
  } catch (err) {
    // The removal may also have moved the whole epoch to its trash while the manifest was being written (ENOENT).
    // A removal claimed the manifest's name first (epoch-removal.ts): this epoch is gone, not committed.
    if (isErrno(err, 'EISDIR') || isErrno(err, 'ENOENT')) {
      throw new GridError('failed-precondition', `epoch ${epoch} of job ${jobId} was removed as incomplete before its manifest landed`);
    }
    throw err;
  }
  return manifest;
}

async function checkCommittable(m: EpochManifest, storeDir: string): Promise<void> {
  const committed = await listCommitted(storeDir, m.jobId);
  const latest = committed[committed.length - 1];
  if (latest !== undefined && latest.epoch >= m.epoch) {
    throw new GridError('failed-precondition', `job ${m.jobId}: epoch ${m.epoch} is not above the latest committed epoch ${latest.epoch}`);
  }
  if (m.parentEpoch !== null && !committed.some((c) => c.epoch === m.parentEpoch)) {
    throw new GridError('failed-precondition', `job ${m.jobId}: parent epoch ${m.parentEpoch} of epoch ${m.epoch} is not committed`);
  }
}

async function checkSize(file: string, expectedBytes: number, epoch: bigint): Promise<void> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new GridError('failed-precondition', `epoch ${epoch}: part file ${file} does not exist`);
    throw err;
  }
  if (size !== expectedBytes) {
    throw new GridError('failed-precondition', `epoch ${epoch}: part file ${file} has ${size} bytes, the part says ${expectedBytes}`);
  }
}

async function kindOf(file: string): Promise<'none' | 'file' | 'dir'> {
  try {
    return (await stat(file)).isDirectory() ? 'dir' : 'file';
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 'none';
    throw err;
  }
}
