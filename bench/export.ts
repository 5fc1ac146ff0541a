// export_<size>: what the node agent does after thaw — writeNodePart (data
// file + page table, durable) then commitEpoch (manifest, atomically) — for a
// staging buffer of changed pages, against a raw sequential write + fsync of
// the same number of bytes to the same directory in the store's chunk size.
// After an untimed warm-up write and an untimed warm-up export, rounds run
// raw+export, export+raw, ...; the figure is the median of each, and every
// file is deleted right after it is measured so each measurement starts from
// a similar page cache state.

import { mkdir, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Snapshot } from '../src/node/memory/page-memory.js';
import { commitEpoch, writeNodePart } from '../src/store/index.js';
import { IO_CHUNK_BYTES } from '../src/store/layout.js';
import { info, list, median, mibPerS, printBench, sizeLabel } from './format.js';
import { BENCH_CONTAINER, BENCH_JOB } from './memory-fixture.js';
import { rawWriteFsync, type RawWriteTiming } from './reference.js';

export const EXPORT_TARGET_RATIO = 0.9;

export interface ExportTiming {
  totalMs: number;
  partMs: number;
  commitMs: number;
}

export async function exportOnce(storeDir: string, snap: Snapshot, pageCount: number): Promise<ExportTiming> {
  const epoch = 1n;
  const t0 = performance.now();
  const part = await writeNodePart({
    storeDir, jobId: BENCH_JOB, epoch, nodeId: 'bench-node', staging: snap.staging, pages: snap.entries,
  });
  const t1 = performance.now();
  await commitEpoch({
    storeDir, jobId: BENCH_JOB, epoch, parentEpoch: null, full: true, createdUnixMs: Date.now(),
    containers: [{ name: BENCH_CONTAINER, pageCount }], parts: [part],
    layout: { spec: { jobId: BENCH_JOB, units: [], checkpointIntervalMs: 0, fullEvery: 0 }, placement: {}, partOwners: {} },
  });
  const t2 = performance.now();
  if (part.dataBytes !== snap.staging.byteLength || part.pageCount !== snap.entries.length) {
    throw new Error(`export wrote ${part.dataBytes} bytes / ${part.pageCount} pages, expected ${snap.staging.byteLength} / ${snap.entries.length}`);
  }
  return { totalMs: t2 - t0, partMs: t1 - t0, commitMs: t2 - t1 };
}

/**
 * `raw` is the reference's data: a resident buffer of the staging's size,
 * allocated and filled before timing (main passes the staging itself, so both
 * write the same bytes from the same memory). Writes go to `workDir`; it is
 * left empty.
 */
export async function benchExport(workDir: string, snap: Snapshot, raw: Uint8Array, pageCount: number, rounds: number): Promise<void> {
  const bytes = snap.staging.byteLength;
  if (raw.byteLength !== bytes) throw new Error(`raw reference buffer has ${raw.byteLength} bytes, staging ${bytes}`);
  const rawRuns: RawWriteTiming[] = [];
  const exports: ExportTiming[] = [];
  // Untimed: the first file of the size written in a run is slower (the page
  // cache grows into memory not used before), whichever comes first.
  const warmFile = path.join(workDir, 'warm-up.bin');
  const warmMs = (await rawWriteFsync(warmFile, raw, IO_CHUNK_BYTES)).totalMs;
  await rm(warmFile, { force: true });
  // Untimed too: the first export of a process compiles the writer's hot loops (an agent exports many times).
  const warmStore = path.join(workDir, 'store-warm-up');
  await mkdir(warmStore);
  const warmExportMs = (await exportOnce(warmStore, snap, pageCount)).totalMs;
  await rm(warmStore, { recursive: true, force: true });
  const runRaw = async (r: number): Promise<void> => {
    const rawFile = path.join(workDir, `raw-${r}.bin`);
    rawRuns.push(await rawWriteFsync(rawFile, raw, IO_CHUNK_BYTES));
    await rm(rawFile, { force: true });
  };
  const runExport = async (r: number): Promise<void> => {
    const storeDir = path.join(workDir, `store-${r}`);
    await mkdir(storeDir);
    exports.push(await exportOnce(storeDir, snap, pageCount));
    await rm(storeDir, { recursive: true, force: true });
  };
  for (let r = 0; r < rounds; r += 1) {
    // Order alternates (raw first in even rounds) so neither always follows the other's deletion.
    if (r % 2 === 0) {
      await runRaw(r);
      await runExport(r);
    } else {
      await runExport(r);
      await runRaw(r);
    }
  }
  const rawMs = rawRuns.map((x) => x.totalMs);
  const rawMed = median(rawMs);
  const expMed = median(exports.map((e) => e.totalMs));
  const rawRate = mibPerS(bytes, rawMed);
  const expRate = mibPerS(bytes, expMed);
  const ratio = expRate / rawRate;
  info(`export: untimed warm-ups: raw write ${warmMs.toFixed(0)} ms, export ${warmExportMs.toFixed(0)} ms; then ${rounds} rounds of raw+export (order alternating), chunk ${IO_CHUNK_BYTES / 1024 / 1024} MiB, in ${workDir}`);
  info(`  raw write+fsync ms:   ${list(rawMs)}  (MiB/s ${list(rawMs.map((ms) => mibPerS(bytes, ms)))})`);
  info(`    of which writes ms ${list(rawRuns.map((x) => x.writeMs))}, fsync ms ${list(rawRuns.map((x) => x.syncMs))}`);
  info(`  export ms:            ${list(exports.map((e) => e.totalMs))}  (MiB/s ${list(exports.map((e) => mibPerS(bytes, e.totalMs)))})`);
  info(`    of which writeNodePart ms ${list(exports.map((e) => e.partMs))}, commitEpoch ms ${list(exports.map((e) => e.commitMs))}`);
  info(`  best: raw ${mibPerS(bytes, Math.min(...rawMs)).toFixed(1)} MiB/s, export ${mibPerS(bytes, Math.min(...exports.map((e) => e.totalMs))).toFixed(1)} MiB/s`);
  printBench({
    name: `export_${sizeLabel(bytes)}`,
    value: expRate,
    unit: 'MiB/s',
    ratio,
    ref: `raw_seq_write+fsync_${sizeLabel(bytes)}_chunk${IO_CHUNK_BYTES / (1024 * 1024)}MiB_same_dir=${rawRate.toFixed(1)}MiB/s(median_of_${rounds},alternating)`,
    target: `ratio>=${EXPORT_TARGET_RATIO}`,
    met: ratio >= EXPORT_TARGET_RATIO,
  });
}
