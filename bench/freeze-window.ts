// freeze_window_<size>: what the application feels of a checkpoint round —
// UnitSupervisor.freezeJob of a real unit process, the in-memory snapshot of
// the job's changed pages into the staging the agent keeps warm, thawJob —
// against one memcpy of the same number of bytes into an already-touched
// buffer. Every round first rewrites every page (outside the timing) so that
// the whole size is changed, then times the memcpy and the window, in
// alternating order; the figure is the median of each.

import { mkdir, readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { PAGE_BYTES, type Snapshot } from '../src/node/memory/page-memory.js';
import { warmStaging, newJobShell, type JobShell } from '../src/node/job-shell.js';
import { detectFreezer, type Freezer } from '../src/node/units/freezer.js';
import { UnitSupervisor } from '../src/node/units/unit-supervisor.js';
import { realRuntime } from '../src/wire/real-clients.js';
import { info, list, median, printBench, sizeLabel } from './format.js';
import { BENCH_JOB, dirtyAllPages, type MemoryFixture } from './memory-fixture.js';
import { collectGarbage, memcpyFresh, memcpyInto } from './reference.js';

export const FREEZE_TARGET_RATIO = 2.0;
const FREEZE_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 1_000;

export interface FreezeRig {
  freezer: Freezer;
  supervisor: UnitSupervisor;
  pid: number;
  /** The unit's /proc state letter when frozen and thawed, e.g. "D frozen, S thawed". */
  procStates: string;
  /** Exits of the unit before close(); a window without a live unit would measure nothing. */
  unexpected: string[];
  /** Stops the unit, removes its group and the scope; idempotent. */
  close(): Promise<void>;
}

export async function openFreezeRig(workDir: string): Promise<FreezeRig> {
  const runtime = realRuntime();
  const freezer = await detectFreezer('auto', { scope: `bench-${process.pid}`, time: runtime });
  const logDir = path.join(workDir, 'unit-logs');
  await mkdir(logDir, { recursive: true });
  const unexpected: string[] = [];
  let closing = false;
  const supervisor = new UnitSupervisor({
    freezer,
    logDir,
    freezeTimeoutMs: FREEZE_TIMEOUT_MS,
    timers: runtime.timers,
    onExit: (u) => {
      if (!closing) unexpected.push(`unit ${u.unitId} (pid ${u.pid}) exited: code ${u.exitCode} signal ${u.signal}`);
    },
  });
  let closed: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      closing = true;
      try {
        await supervisor.shutdown(STOP_GRACE_MS);
      } finally {
        await freezer.cleanupScope();
      }
    })());
  try {
    const unit = await supervisor.start(BENCH_JOB, { unitId: 'sleeper', command: '/bin/sleep', args: ['600'], env: {} }, {});
    // One untimed round trip: the unit is frozen per the supervisor, and the
    // kernel's view of the process is recorded for the context line.
    await supervisor.freezeJob(BENCH_JOB);
    let frozenState: string;
    try {
      frozenState = await procState(unit.pid);
      checkFrozen(supervisor);
    } finally {
      await supervisor.thawJob(BENCH_JOB);
    }
    const thawedState = await procState(unit.pid);
    if (unexpected.length > 0) throw new Error(unexpected.join('; '));
    return { freezer, supervisor, pid: unit.pid, procStates: `${frozenState} frozen, ${thawedState} thawed`, unexpected, close };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}

/** Throws unless the job's one unit is live and recorded frozen. */
function checkFrozen(supervisor: UnitSupervisor): void {
  const units = supervisor.units(BENCH_JOB);
  if (units.length !== 1 || units[0]!.state !== 'frozen') {
    throw new Error(`expected the bench unit frozen after freezeJob, found ${JSON.stringify(units)}`);
  }
}

async function procState(pid: number): Promise<string> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '?';
  } catch {
    return '?';
  }
}

interface WindowTiming {
  totalMs: number;
  freezeMs: number;
  snapshotMs: number;
  thawMs: number;
}

async function windowOnce(rig: FreezeRig, fx: MemoryFixture, job: JobShell): Promise<WindowTiming> {
  // Outside the window, exactly as the checkpoint runner does it.
  const staging = warmStaging(job, fx.memory.snapshotBytes(BENCH_JOB, 'changed'), PAGE_BYTES);
  const t0 = performance.now();
  await rig.supervisor.freezeJob(BENCH_JOB);
  const t1 = performance.now();
  let snap: Snapshot;
  let t2: number;
  try {
    checkFrozen(rig.supervisor); // microseconds: a unit that died would make freezeJob a no-op
    snap = fx.memory.snapshot(BENCH_JOB, 'changed', staging);
    t2 = performance.now();
  } finally {
    // Always thaw, as the checkpoint runner does.
    await rig.supervisor.thawJob(BENCH_JOB);
  }
  const t3 = performance.now();
  if (snap.staging.byteLength !== fx.bytes || snap.entries.length !== fx.pages || snap.pagesSwappedIn !== 0) {
    throw new Error(
      `snapshot took ${snap.entries.length} pages / ${snap.staging.byteLength} bytes (${snap.pagesSwappedIn} from swap); ` +
        `expected ${fx.pages} / ${fx.bytes} from memory`,
    );
  }
  if (staging && snap.staging.buffer !== staging.buffer) throw new Error('the snapshot did not use the warm staging buffer');
  return { totalMs: t3 - t0, freezeMs: t1 - t0, snapshotMs: t2 - t1, thawMs: t3 - t2 };
}

/**
 * The window against a memcpy of the same bytes into an already-touched
 * destination: the physical limit of the copy. (A memcpy into fresh memory
 * is mostly first-touch page faults on this VM — printed for context.)
 */
export async function benchFreezeWindow(rig: FreezeRig, fx: MemoryFixture, src: Uint8Array, rounds: number): Promise<{ warmMs: number[] }> {
  if (src.byteLength !== fx.bytes) throw new Error(`memcpy source has ${src.byteLength} bytes, memory ${fx.bytes}`);
  const job = newJobShell({ jobId: BENCH_JOB, units: [], checkpointIntervalMs: 0, fullEvery: 1 }, 1);
  const dest = new Uint8Array(src.byteLength);
  dest.fill(1); // touched once, like the agent's staging
  const memcpyMs: number[] = [];
  const windows: WindowTiming[] = [];
  const dirtyMs: number[] = [];
  for (let r = 0; r < rounds; r += 1) {
    dirtyMs.push(dirtyAllPages(fx, r + 1));
    if (r % 2 === 0) {
      memcpyMs.push(memcpyInto(src, dest));
      windows.push(await windowOnce(rig, fx, job));
    } else {
      windows.push(await windowOnce(rig, fx, job));
      memcpyMs.push(memcpyInto(src, dest));
    }
  }
  if (rig.unexpected.length > 0) throw new Error(rig.unexpected.join('; '));
  const freshMs = memcpyFresh(src);
  collectGarbage();
  const memMed = median(memcpyMs);
  const winMed = median(windows.map((w) => w.totalMs));
  const ratio = winMed / memMed;
  const size = sizeLabel(fx.bytes);
  info(`freeze window: freezer ${rig.freezer.kind} (${rig.freezer.detail}), unit /bin/sleep 600 pid ${rig.pid} (/proc state ${rig.procStates}), ${rounds} rounds of memcpy+window (order alternating)`);
  info(`  rewriting all pages before each round (untimed) ms: ${list(dirtyMs)}`);
  info(`  memcpy into an already-touched ${size} destination ms: ${list(memcpyMs)}`);
  info(`  window ms: ${list(windows.map((w) => w.totalMs))}`);
  info(`    freeze ms ${list(windows.map((w) => w.freezeMs), 2)} | snapshot ms ${list(windows.map((w) => w.snapshotMs))} | thaw ms ${list(windows.map((w) => w.thawMs), 2)}`);
  info(`  for context, a memcpy into a freshly allocated ${size} (first-touch page faults included): ${freshMs.toFixed(0)} ms — what the window cost before the staging was kept warm`);
  printBench({
    name: `freeze_window_${size}`,
    value: winMed,
    unit: 'ms',
    ratio,
    ref: `memcpy_${size}_into_touched_buffer=${memMed.toFixed(1)}ms(median_of_${rounds},alternating),freezer=${rig.freezer.kind}`,
    target: `ratio<=${FREEZE_TARGET_RATIO}`,
    met: ratio <= FREEZE_TARGET_RATIO,
  });
  return { warmMs: memcpyMs };
}
