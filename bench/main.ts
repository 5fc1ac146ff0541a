// gridckpt benchmarks: `npm run bench`.
//
// Each figure is one line "BENCH <name> <value> <unit> ratio=<r> ref=<...>
// target=<...> met=<yes|no|n/a>" (see format.ts) whose reference is measured
// in the same run; indented lines are context. Missing a target is reported,
// not an error: the exit code is non-zero only when a benchmark fails.
//
// Environment:
//   GRIDCKPT_BENCH_DIR     where temporary files go (default os.tmpdir()); a
//                          fresh subdirectory is created and removed.
//   GRIDCKPT_BENCH_MIB     size of the changed memory (default 1024).
//   GRIDCKPT_BENCH_ROUNDS  rounds of the export, restore (cached, and cold) and
//                          CRC benchmarks (default 5; medians reported).
//   GRIDCKPT_BENCH_FREEZE_ROUNDS  rounds of the freeze-window benchmark
//                          (default 5; medians reported).
//   GRIDCKPT_BENCH_ROUND_ROUNDS   measured rounds per agent count (default 15).
//   GRIDCKPT_BENCH_ONLY    run only the named benchmark: 'round' (the round
//                          latency, without the memory, export, restore,
//                          freeze-window and CRC figures and their 1 GiB
//                          fixture); unset or 'all' runs every one.
// Run node with --expose-gc to have buffers freed between rounds explicitly.

import { mkdtemp, rm, statfs } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { benchExport } from './export.js';
import { GiB, MiB, gbPerS, info, list, median, printBench, sizeLabel } from './format.js';
import { benchFreezeWindow, openFreezeRig, type FreezeRig } from './freeze-window.js';
import { BENCH_JOB, createMemory, dirtyAllPages } from './memory-fixture.js';
import { collectGarbage, crcPerPage, crcWhole } from './reference.js';
import { openCacheDropper } from './page-cache.js';
import { benchRestore } from './restore.js';
import { benchRoundLatency } from './round-latency.js';

function envInt(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new Error(`${name}=${raw}: expected an integer from ${min} to ${max}`);
  return v;
}

function rssMiB(): string {
  return `${Math.round(process.memoryUsage().rss / MiB)} MiB`;
}

const cleanups: (() => Promise<void>)[] = [];

async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const c = cleanups.pop()!;
    try {
      await c();
    } catch (err) {
      process.stderr.write(`bench cleanup failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  }
}

type Only = 'all' | 'round';

function envOnly(): Only {
  const raw = process.env.GRIDCKPT_BENCH_ONLY;
  if (raw === undefined || raw === '' || raw === 'all') return 'all';
  if (raw === 'round') return raw;
  throw new Error(`GRIDCKPT_BENCH_ONLY=${raw}: expected 'round' or 'all'`);
}

async function main(): Promise<void> {
  const only = envOnly();
  const roundRounds = envInt('GRIDCKPT_BENCH_ROUND_ROUNDS', 15, 1, 200);
  if (only === 'round') return mainRoundOnly(roundRounds);
  const bytes = envInt('GRIDCKPT_BENCH_MIB', 1024, 1, 8192) * MiB;
  const rounds = envInt('GRIDCKPT_BENCH_ROUNDS', 5, 1, 20);
  const freezeRounds = envInt('GRIDCKPT_BENCH_FREEZE_ROUNDS', 5, 1, 20);
  const base = path.resolve(process.env.GRIDCKPT_BENCH_DIR || os.tmpdir());
  const workDir = await mkdtemp(path.join(base, 'gridckpt-bench-'));
  cleanups.push(() => rm(workDir, { recursive: true, force: true }));
  const fsType = (await statfs(workDir)).type.toString(16);
  const started = performance.now();
  const gcNote = collectGarbage() ? 'global.gc exposed: buffers are collected between rounds' : 'no global.gc: buffers are dropped and left to V8';
  info(`gridckpt bench: node ${process.version}, ${os.cpus().length}x ${os.cpus()[0]?.model ?? '?'}, ${(os.totalmem() / GiB).toFixed(1)} GiB RAM, ${loadNote()}`);
  info(`size ${sizeLabel(bytes)} (${bytes / 4096} pages of 4 KiB), ${rounds} export/crc rounds, ${freezeRounds} freeze-window rounds, work dir ${workDir} (statfs type 0x${fsType}); ${gcNote}`);

  // 1. An empty coordinated round against the number of agents vs a bare gRPC round trip. First, while this
  // process is small: its 64 agents spawn 64 units, and each spawn forks this process (see below); with the
  // GiB buffers of the other figures held, job starts missed their deadlines and the 64-agent job failed.
  await benchRoundLatency(path.join(workDir, 'rounds'), roundRounds);

  // The unit is spawned before the page memory exists. Spawning forks this
  // process (libuv on Linux): every page it holds becomes copy-on-write, so
  // the next write to each page of a large page memory takes a fault — on
  // VMs where faults are slow, seconds per GiB. That cost is real for an
  // agent that starts units while holding memory, but it is not what these
  // figures measure (and falls outside their timings anyway).
  const rig: FreezeRig = await openFreezeRig(workDir);
  cleanups.push(() => rig.close());
  // Likewise the helper that drops files from the page cache for the cold figures (page-cache.ts).
  const dropper = openCacheDropper();
  cleanups.push(async () => dropper.close());

  // The job's memory, every page written, snapshotted for real.
  const fx = createMemory(bytes);
  const fillMs = dirtyAllPages(fx, 0);
  const t = performance.now();
  let snap: ReturnType<typeof fx.memory.snapshot> | null = fx.memory.snapshot(BENCH_JOB, 'changed');
  const firstSnapMs = performance.now() - t;
  info(`page memory: wrote ${fx.pages} pages with applyBatch in ${fillMs.toFixed(0)} ms; first snapshot (untimed for the figures) ${firstSnapMs.toFixed(0)} ms; rss ${rssMiB()}`);

  // The staging buffer is also the raw reference's data (same bytes, already
  // resident) and later the memcpy and CRC source: one 1 GiB buffer fewer to
  // fault in, which matters where first-touch page faults are slow.
  const src = snap.staging;

  // 2. Export after thaw vs raw sequential write + fsync.
  await benchExport(workDir, snap, src, fx.pages, rounds);
  info(`rss after export ${rssMiB()}`);

  // 3. Restore of that epoch into page memory vs a raw read + CRC32C of its data file, cached and cold.
  await benchRestore(workDir, snap, fx.pages, rounds, dropper, src);
  dropper.close();
  snap = null;
  collectGarbage();
  info(`rss after restore ${rssMiB()}`);

  // 4. Freeze window vs memcpy.
  const memcpy = await benchFreezeWindow(rig, fx, src, freezeRounds);
  await rig.close();
  info(`unit stopped, freezer groups of scope bench-${process.pid} removed; rss ${rssMiB()}`);

  // 5. CRC32C over the buffer vs the memcpy just measured (context figure).
  const crcMs: number[] = [];
  const perPageMs: number[] = [];
  let crc = 0;
  for (let r = 0; r < rounds; r += 1) {
    const [ms, c] = crcWhole(src);
    crcMs.push(ms);
    crc = c;
    perPageMs.push(crcPerPage(src));
  }
  const crcRate = gbPerS(bytes, median(crcMs));
  const memRate = gbPerS(bytes, median(memcpy.warmMs));
  info(`crc32c (@node-rs/crc32) one call over ${sizeLabel(bytes)} ms: ${list(crcMs)} (crc 0x${crc.toString(16)}); one call per 4 KiB page, as the store does, ms: ${list(perPageMs)}`);
  printBench({
    name: `crc32c_${sizeLabel(bytes)}`,
    value: crcRate,
    unit: 'GB/s',
    ratio: crcRate / memRate,
    ref: `memcpy_${sizeLabel(bytes)}_into_already-touched_buffer=${memRate.toFixed(2)}GB/s(median_of_${freezeRounds},from_freeze_window_rounds)`,
    target: 'none(context)',
    met: undefined,
  });


  info(`total bench time ${((performance.now() - started) / 1000).toFixed(1)} s; ${loadNote()}`);
}

/** The machine's load: figures measured beside other work are slower, the references too, not always alike. */
function loadNote(): string {
  return `load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (1, 5, 15 min)`;
}

/** GRIDCKPT_BENCH_ONLY=round: the round latency alone, in a work dir of its own. */
async function mainRoundOnly(roundRounds: number): Promise<void> {
  const base = path.resolve(process.env.GRIDCKPT_BENCH_DIR || os.tmpdir());
  const workDir = await mkdtemp(path.join(base, 'gridckpt-bench-'));
  cleanups.push(() => rm(workDir, { recursive: true, force: true }));
  const started = performance.now();
  info(`gridckpt bench (round only): node ${process.version}, ${os.cpus().length}x ${os.cpus()[0]?.model ?? '?'}, ${loadNote()}, work dir ${workDir}`);
  await benchRoundLatency(workDir, roundRounds);
  info(`total bench time ${((performance.now() - started) / 1000).toFixed(1)} s; ${loadNote()}`);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}, cleaning up\n`);
    void runCleanups().finally(() => process.exit(130));
  });
}

try {
  await main();
} catch (err) {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  await runCleanups();
}
