// Writes an epoch in the two steps of the round: each node agent writes its
// part (writeNodePart: data + page table, durable, not yet visible), then the
// coordinator, once every part is durable, commits the epoch (commitEpoch:
// the manifest, atomically). Until the manifest's rename, nothing written here
// is ever restored (ARCHITECTURE §3 invariant 3, atomic commit).
// Invariants:
//   1. The .pages file is the staging buffer byte for byte without its zero
//      pages (part-plan.ts invariant 3: those are only flagged in the table),
//      written in IO_CHUNK_BYTES chunks, one write in flight, as the raw
//      reference writes. Only the page list's checks come before the first
//      write; each chunk's zero pages are found while the chunk before it is
//      written, and the table is laid out, its CRC32Cs computed and its file
//      written and fsynced while the data file's fsync is in flight, so all of
//      that hides behind the disk (measured: overlapping the CRCs with the
//      writes instead competes with the kernel's copy for the CPU and was
//      slower; the zero scan and the table's layout before the first write,
//      and the table's write after the data's fsync, cost ~0.15 s per GiB on
//      the critical path; one vectored write of the whole file was ~30 ms
//      slower than the chunks). The table is laid out by part-plan.ts and its
//      digest is part-digest.ts's, the digest a participant answered with
//      PREPARED for the same staging.
//   2. A part returns only after its data file, table file and epoch directory
//      entry are fsynced; the PartInfo it returns is what the manifest records.
//   3. A part is never written into a committed epoch, and commitEpoch writes
//      MANIFEST.json.tmp, fsyncs it, renames it and fsyncs the directory, in
//      that order: a crash before the rename leaves the epoch uncommitted.
//      A rename that loses the manifest's name to a removal (epoch-removal.ts)
//      fails with failed-precondition: that epoch is gone, never committed.
//   4. commitEpoch refuses an epoch not above every committed one, a parent that
//      is not committed, and part files whose sizes differ from the PartInfo.
//   5. A part of no pages (nothing changed since the parent epoch, or nothing
//      held) writes nothing at all, not even its epoch directory: its PartInfo
//      has tableBytes 0, dataBytes 0, pageCount 0 and EMPTY_PART_DIGEST, and
//      readers open no file for it (part-reader.ts hasFiles). An epoch in
//      which nothing changed is then its manifest alone (an empty round cost
//      two files and three fsyncs per agent before).

import * as path from 'node:path';
import { GridError, invalidArgument } from '../common/errors.js';
import { failpoint, failpointAsync } from '../common/failpoints.js';
import { checkName } from '../common/names.js';
import { stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { ensureDirDurable, fsyncPath, isErrno, renameDurable, writeAll, writeFileSynced, writeThenSync } from '../runtime/durable-fs.js';
import { listEpochDirs, lookupManifest } from './epoch-catalog.js';
import { IO_CHUNK_BYTES, MANIFEST_FILE, MANIFEST_TMP_FILE, MAX_MANIFEST_BYTES, PAGE_BYTES, dataFileName, epochDir, tableFileName } from './layout.js';
import { buildManifest, encodeManifest, type EpochManifest, type PartInfo } from './manifest.js';
import { EMPTY_PART_DIGEST, digestPageTable } from './part-digest.js';
import { hasFiles } from './part-reader.js';
import { checkStagedPart, fillChecksums, markZeroSlots, planLayout, type PartPage } from './part-plan.js';

/** Pages of staging per write: the store's I/O chunk. */
const CHUNK_PAGES = IO_CHUNK_BYTES / PAGE_BYTES;

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

/** The steps of a commit, in order; `renamed` is the commit point. */
export type CommitStep = 'checked' | 'dir-ready' | 'sizes-checked' | 'manifest-written' | 'renamed';

/**
 * A seam for tests that must reach every interleaving of a commit with a
 * removal deterministically (timing cannot: a whole commit is about one timer
 * tick). Production passes nothing.
 */
export interface CommitHooks {
  pause?: (step: CommitStep) => Promise<void>;
}

export async function writeNodePart(input: NodePartInput): Promise<PartInfo> {
  const { storeDir, jobId, epoch, nodeId, staging } = input;
  const dir = epochDir(storeDir, jobId, epoch);
  checkName('node id', nodeId);
  checkStagedPart(input); // invalid input is refused here, before anything is written
  if (input.pages.length === 0) return emptyPart(nodeId); // invariant 5
  const manifest = await kindOf(path.join(dir, MANIFEST_FILE));
  if (manifest === 'file') {
    throw new GridError('failed-precondition', `epoch ${epoch} of job ${jobId} is already committed; node ${nodeId} cannot add a part to it`);
  }
  if (manifest === 'dir') {
    throw new GridError('failed-precondition', `epoch ${epoch} of job ${jobId} is being removed as incomplete; node ${nodeId} cannot add a part to it`);
  }
  await ensureDirDurable(dir);

  const dataFile = dataFileName(nodeId);
  const tableFile = tableFileName(nodeId);
  const zeroSlot = new Uint8Array(input.pages.length);
  let dataBytes = 0;
  const { tableBytes, tableDigest } = await writeThenSync(path.join(dir, dataFile), async (fh) => {
    dataBytes = await writeNonZero(fh, staging, zeroSlot);
  }, async () => {
    failpoint('store.after-part-data'); // every data byte written, its fsync in flight, no table yet
    const layout = planLayout(input, { zeroSlot, dataBytes });
    await fillChecksums(layout, staging);
    const table = digestPageTable(layout.table);
    // The table's own write and fsync overlap the data file's fsync too (neither is visible before the manifest).
    await writeFileSynced(path.join(dir, tableFile), table.tableBytes);
    return table;
  });
  await fsyncPath(dir);
  failpoint('store.after-part');
  return { nodeId, dataFile, tableFile, dataBytes, tableBytes: tableBytes.byteLength, pageCount: input.pages.length, tableDigest };
}

/**
 * Writes staging without its zero pages (invariant 1), IO_CHUNK_BYTES of
 * staging at a time, one write in flight; each chunk's zero pages are found
 * (markZeroSlots, filling zeroSlot) while the chunk before it is being
 * written. Returns the bytes written.
 */
async function writeNonZero(fh: FileHandle, staging: Uint8Array, zeroSlot: Uint8Array): Promise<number> {
  const slots = zeroSlot.length;
  let position = 0;
  let inFlight: Promise<void> = Promise.resolve();
  try {
    for (let first = 0; first < slots; first += CHUNK_PAGES) {
      const last = Math.min(slots, first + CHUNK_PAGES);
      markZeroSlots(staging, zeroSlot, first, last);
      const runs: Array<[number, number]> = [];
      for (let s = first; s < last; s++) {
        if (zeroSlot[s]) continue;
        const run = runs[runs.length - 1];
        if (run && run[0] + run[1] === s * PAGE_BYTES) run[1] += PAGE_BYTES;
        else runs.push([s * PAGE_BYTES, PAGE_BYTES]);
      }
      await inFlight;
      const at = position;
      for (const [, bytes] of runs) position += bytes;
      inFlight = (async () => {
        let to = at;
        for (const [start, bytes] of runs) {
          await writeAll(fh, staging, start, bytes, to);
          to += bytes;
        }
      })();
      inFlight.catch(() => {}); // awaited next turn or below
    }
  } finally {
    await inFlight;
  }
  return position;
}

/** Invariant 5: the part of a node that has no page to save. */
function emptyPart(nodeId: string): PartInfo {
  return { nodeId, dataFile: dataFileName(nodeId), tableFile: tableFileName(nodeId), dataBytes: 0, tableBytes: 0, pageCount: 0, tableDigest: EMPTY_PART_DIGEST };
}

export async function commitEpoch(input: CommitInput, hooks: CommitHooks = {}): Promise<EpochManifest> {
  const { storeDir, jobId, epoch } = input;
  const pause = hooks.pause ?? (async () => undefined);
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
  await pause('checked');
  const dir = epochDir(storeDir, jobId, epoch);
  await ensureDirDurable(dir);
  await pause('dir-ready');
  await checkPartSizes(dir, manifest);
  await pause('sizes-checked');
  failpoint('store.before-manifest');
  const tmp = path.join(dir, MANIFEST_TMP_FILE);
  try {
    await writeFileSynced(tmp, bytes);
    await pause('manifest-written');
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
  await pause('renamed');
  return manifest;
}

/**
 * Invariant 4's epoch and parent checks. They read only the manifests that
 * decide them: those of the epochs at or above this one, from the top (the
 * first committed one found is the latest committed), and the parent's.
 * Reading every committed manifest of the job instead (listCommitted) cost a
 * stat, a read and a digest check per epoch the job ever kept, on every
 * round's critical path.
 */
async function checkCommittable(m: EpochManifest, storeDir: string): Promise<void> {
  const epochs = await listEpochDirs(storeDir, m.jobId);
  for (let i = epochs.length - 1; i >= 0 && epochs[i]! >= m.epoch; i--) {
    if ((await lookupManifest(storeDir, m.jobId, epochs[i]!)).kind === 'committed') {
      throw new GridError('failed-precondition', `job ${m.jobId}: epoch ${m.epoch} is not above the latest committed epoch ${epochs[i]}`);
    }
  }
  if (m.parentEpoch !== null && (await lookupManifest(storeDir, m.jobId, m.parentEpoch)).kind !== 'committed') {
    throw new GridError('failed-precondition', `job ${m.jobId}: parent epoch ${m.parentEpoch} of epoch ${m.epoch} is not committed`);
  }
}

/**
 * Invariant 4's size check of every part file. The stats run at once (on the
 * I/O pool; as many as the manifest has parts, which it bounds) rather than
 * one after another, which cost two sequential stats per participant on the
 * round's critical path; the first failure in part order is reported.
 */
async function checkPartSizes(dir: string, m: EpochManifest): Promise<void> {
  const checks = await Promise.allSettled(m.parts.filter(hasFiles).flatMap((part) => [
    checkSize(path.join(dir, part.dataFile), part.dataBytes, m.epoch),
    checkSize(path.join(dir, part.tableFile), part.tableBytes, m.epoch),
  ]));
  const failed = checks.find((c) => c.status === 'rejected');
  if (failed) throw failed.reason;
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
