// restore_cached_<size> and restore_cold_<size>: what a node agent does to
// restore a job — loadJobPages (restore-runner.ts: the epoch's chain and
// tables read and checked, every page read into page memory and its CRC32C
// checked before it becomes a page) — for one full epoch of the export's
// staging, against a raw sequential read of the same epoch's data file with
// one CRC32C pass (reference.ts rawReadCrc), in the same run (the restore
// checks about half of its bytes on a worker thread: crc-offload.ts): read into an
// already-touched buffer of the image's size, chunk by chunk, so that the
// image is in memory at the end as a restore leaves it. The same read into
// one reused chunk (it keeps nothing, and its CRC reads bytes still in the
// CPU's cache) is measured beside it and printed as context with its ratio.
//
// The page memory restored into has frames already touched (an agent that
// has run before): an untimed first restore faults them in and is reported
// as context, since first-touch faults on a VM (~6 ms per MiB here) would
// otherwise swamp both figures. Cached: the epoch's files are in the page
// cache (just read). Cold: before every timed restore and every reference
// read, the epoch's files are dropped from the page cache (page-cache.ts:
// dd iflag=nocache in a helper process, checked with fincore); if that is
// impossible here, the cold figure says so instead of being measured warm.
// Each round runs the restore and both references in a rotating order; the
// figures are medians.

import { mkdir, readdir, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { PageMemory, type Snapshot } from '../src/node/memory/page-memory.js';
import { MemorySwap } from '../src/node/memory/swap-memory.js';
import { loadJobPages } from '../src/node/restore-runner.js';
import { offloadedBytes } from '../src/store/crc-offload.js';
import { epochDir, listCommitted, type EpochManifest } from '../src/store/index.js';
import { IO_CHUNK_BYTES } from '../src/store/layout.js';
import { exportOnce } from './export.js';
import { MiB, info, list, median, mibPerS, printBench, printUnmeasured, sizeLabel } from './format.js';
import { BENCH_JOB } from './memory-fixture.js';
import type { CacheDropper } from './page-cache.js';
import { rawReadCrc } from './reference.js';

export const RESTORE_TARGET_RATIO = 0.8;
/** Frames beyond the image, as the fixture's page memory has. */
const BUDGET_MARGIN_BYTES = 64 * MiB;

interface Rig {
  storeDir: string;
  manifest: EpochManifest;
  files: string[];
  dataFile: string;
  memory: PageMemory;
  /** The image reference's destination (touched); the stream reference's one chunk. */
  imageBuffer: Uint8Array;
  chunkBuffer: Uint8Array;
  bytes: number;
  /** Of the last restore's bytes, the share whose CRC ran on the worker thread (store/crc-offload.ts). */
  offloadShare: number;
}

/** One restore of the epoch into the rig's page memory (the job dropped first, untimed); returns ms. */
async function restoreOnce(rig: Rig): Promise<number> {
  const { memory, manifest } = rig;
  if (memory.hasJob(BENCH_JOB)) memory.dropJob(BENCH_JOB);
  const before = offloadedBytes();
  const t0 = performance.now();
  for (const c of manifest.containers) memory.createContainer(BENCH_JOB, c.name, c.pageCount);
  const loaded = await loadJobPages(memory, rig.storeDir, BENCH_JOB, manifest);
  const ms = performance.now() - t0;
  rig.offloadShare = (offloadedBytes() - before) / rig.bytes;
  if (loaded.pagesLoaded !== rig.bytes / 4096 || memory.stats().framesLent !== 0) {
    throw new Error(`restore loaded ${loaded.pagesLoaded} pages (${memory.stats().framesLent} frames left lent), expected ${rig.bytes / 4096}`);
  }
  return ms;
}

async function referenceOnce(rig: Rig, into: Uint8Array): Promise<number> {
  const r = await rawReadCrc(rig.dataFile, IO_CHUNK_BYTES, into);
  if (r.bytes !== rig.bytes) throw new Error(`reference read ${r.bytes} bytes of ${rig.dataFile}, expected ${rig.bytes}`);
  return r.totalMs;
}

/**
 * `imageBuffer`: a touched buffer of at least the image's size the image
 * reference may overwrite (main passes the export's staging: its content
 * matters to no later figure).
 */
export async function benchRestore(workDir: string, snap: Snapshot, pageCount: number, rounds: number, dropper: CacheDropper, imageBuffer: Uint8Array): Promise<void> {
  const storeDir = path.join(workDir, 'restore-store');
  await mkdir(storeDir);
  try {
    await exportOnce(storeDir, snap, pageCount);
    const manifest = (await listCommitted(storeDir, BENCH_JOB))[0]!;
    const dir = epochDir(storeDir, BENCH_JOB, manifest.epoch);
    const files = (await readdir(dir)).map((f) => path.join(dir, f));
    const bytes = snap.staging.byteLength;
    const rig: Rig = {
      storeDir, manifest, files, dataFile: path.join(dir, manifest.parts[0]!.dataFile), bytes,
      memory: new PageMemory({
        nodeId: 'bench-restore', budgetBytes: bytes + BUDGET_MARGIN_BYTES, maxContainersPerJob: 4,
        maxPagesPerContainer: Math.max(pageCount, 262_144), maxBatchWrites: 1024, maxBatchBytes: 1024 * 4096,
      }, new MemorySwap()),
      imageBuffer: imageBuffer.subarray(0, snap.staging.byteLength),
      chunkBuffer: new Uint8Array(IO_CHUNK_BYTES).fill(1),
      offloadShare: 0,
    };
    if (rig.imageBuffer.byteLength !== bytes) throw new Error(`image buffer of ${imageBuffer.byteLength} bytes for a ${bytes}-byte image`);
    const firstMs = await restoreOnce(rig);
    info(`restore: one full epoch of ${pageCount} pages (${manifest.parts.length} part), into a page memory of ${sizeLabel(bytes + BUDGET_MARGIN_BYTES)}; the first restore, into untouched frames (first-touch faults included, untimed for the figures): ${firstMs.toFixed(0)} ms`);
    await cachedFigure(rig, rounds);
    await coldFigure(rig, rounds, dropper);
  } finally {
    await rm(storeDir, { recursive: true, force: true });
  }
}

interface Timings { restoreMs: number[]; refMs: number[]; streamMs: number[] }

/** Runs restore and both references `rounds` times, the order rotating, each after `before`. */
async function alternate(rig: Rig, rounds: number, before: () => Promise<void>): Promise<Timings> {
  const t: Timings = { restoreMs: [], refMs: [], streamMs: [] };
  for (let r = 0; r < rounds; r++) {
    const steps = [
      async () => t.restoreMs.push(await restoreOnce(rig)),
      async () => t.refMs.push(await referenceOnce(rig, rig.imageBuffer)),
      async () => t.streamMs.push(await referenceOnce(rig, rig.chunkBuffer)),
    ];
    for (let k = 0; k < steps.length; k++) {
      await before();
      await steps[(k + r) % steps.length]!();
    }
  }
  return t;
}

async function cachedFigure(rig: Rig, rounds: number): Promise<void> {
  report(rig, 'cached', await alternate(rig, rounds, async () => undefined), rounds);
}

async function coldFigure(rig: Rig, rounds: number, dropper: CacheDropper): Promise<void> {
  let leftMiB = 0;
  try {
    const left = await dropper.drop(rig.files);
    if (!Number.isNaN(left) && left > 0) throw new Error(`${(left / MiB).toFixed(1)} MiB stayed in the page cache after dd iflag=nocache`);
  } catch (err) {
    info(`restore cold: cannot drop the epoch's files from the page cache here (${(err as Error).message}): not measured`);
    printUnmeasured(`restore_cold_${sizeLabel(rig.bytes)}`, 'MiB/s', `cold_page_cache_unavailable`, `ratio>=${RESTORE_TARGET_RATIO}`);
    return;
  }
  const timings = await alternate(rig, rounds, async () => {
    const left = await dropper.drop(rig.files);
    leftMiB = Number.isNaN(left) ? Number.NaN : Math.max(leftMiB, left / MiB);
  });
  report(rig, 'cold', timings, rounds);
  info(`  cold: the epoch's files dropped from the page cache (dd iflag=nocache) before every restore and reference read; ${Number.isNaN(leftMiB) ? 'fincore unavailable to confirm it' : `at most ${leftMiB.toFixed(1)} MiB stayed resident (fincore)`}`);
}

function report(rig: Rig, kind: 'cached' | 'cold', t: Timings, rounds: number): void {
  const rate = mibPerS(rig.bytes, median(t.restoreMs));
  const refRate = mibPerS(rig.bytes, median(t.refMs));
  const streamRate = mibPerS(rig.bytes, median(t.streamMs));
  const ratio = rate / refRate;
  const how = `${kind === 'cold' ? 'cold_read(dd_iflag=nocache_first)' : 'cached_read'}_of_the_data_file_${sizeLabel(rig.bytes)}_chunk${IO_CHUNK_BYTES / MiB}MiB`;
  info(`restore ${kind}: restore ms ${list(t.restoreMs)} (${(100 * rig.offloadShare).toFixed(0)}% of the bytes CRC-checked on a worker thread, the rest on the event loop); reference (read into a ${sizeLabel(rig.bytes)} buffer + CRC32C) ms ${list(t.refMs)}`);
  info(`  beside it, the same read into one reused ${IO_CHUNK_BYTES / MiB} MiB chunk + CRC32C (keeps nothing, CRC on cache-hot bytes) ms ${list(t.streamMs)}: ${streamRate.toFixed(1)} MiB/s, restore ratio ${(rate / streamRate).toFixed(3)} against it`);
  printBench({
    name: `restore_${kind}_${sizeLabel(rig.bytes)}`,
    value: rate,
    unit: 'MiB/s',
    ratio,
    ref: `${how}_into_a_touched_${sizeLabel(rig.bytes)}_buffer+crc32c=${refRate.toFixed(1)}MiB/s(median_of_${rounds},order_rotating)`,
    target: `ratio>=${RESTORE_TARGET_RATIO}`,
    met: ratio >= RESTORE_TARGET_RATIO,
  });
}
