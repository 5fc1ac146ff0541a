import { GridError } from '../common/errors.js';
import { failpointAsync } from '../common/failpoints.js';
import type { AgentDeps } from './agent.js';
import type { JobRecord } from './job-record.js';
import { PAGE_BYTES, type Snapshot } from './memory/page-memory.js';
import { writeNodePart, commitEpoch, removeIfIncomplete, type EpochManifest } from '../store/index.js';

// One local checkpoint (ARCHITECTURE §4 on a single node):
//   freeze units → close the gate → snapshot changed pages to staging →
//   thaw and open the gate → write page file + table → manifest (commit).
// The freeze window holds only the in-memory copy, never disk I/O. Thaw is in
// a finally: whatever fails, no unit stays frozen (invariant 4). A failed
// write marks the snapshotted pages changed again so the next epoch has them.

export interface CheckpointResult {
  manifest: EpochManifest;
  chainLength: number;
  freezeWindowMs: number;
  freezeMs: number;
  snapshotMs: number;
  thawMs: number;
  writeMs: number;
  pagesSwappedIn: number;
}

/**
 * Sizes the job's staging before the freeze and touches every byte of it,
 * so the copy inside the window takes no page faults (on this VM a fresh GiB
 * faults for 3–5 s, a warm one copies in 0.1 s). It is kept for the next
 * checkpoint; headroom covers pages changed between now and the freeze (if
 * more change, the snapshot allocates, slower but correct).
 */
export function warmStaging(job: JobRecord, needBytes: number, pageBytes: number): Uint8Array | undefined {
  if (needBytes === 0) return undefined;
  if (job.staging && job.staging.length >= needBytes) return job.staging;
  const bytes = needBytes + Math.ceil(needBytes / 4 / pageBytes) * pageBytes + 64 * pageBytes;
  job.staging = null; // drop the old one before allocating the new
  const staging = new Uint8Array(bytes);
  staging.fill(1);
  job.staging = staging;
  return staging;
}

export interface FrozenSnapshot {
  snapshot: Snapshot;
  freezeMs: number;
  snapshotMs: number;
  thawMs: number;
  freezeWindowMs: number;
}

/**
 * The freeze window, shared by local checkpoints and the prepare phase of a
 * coordinated round: freeze → gate → snapshot into warm staging → thaw (in a
 * finally) → open the gate. Throws GridError('unavailable') naming the stage.
 */
export async function freezeAndSnapshot(deps: AgentDeps, job: JobRecord, epoch: bigint, mode: 'full' | 'changed'): Promise<FrozenSnapshot> {
  const { memory, supervisor, metrics } = deps;
  const { clock } = deps.runtime;
  const jobId = job.spec.jobId;
  const staging = warmStaging(job, memory.snapshotBytes(jobId, mode), PAGE_BYTES);
  const t0 = clock.nowMs();
  try {
    await supervisor.freezeJob(jobId);
  } catch (err) {
    fail(job, 'freeze', err);
    metrics.checkpointFailed('freeze');
    throw new GridError('unavailable', `epoch ${epoch} of job ${jobId}: freeze failed: ${message(err)}`);
  }
  const t1 = clock.nowMs();
  let snapshot: Snapshot | null = null;
  let snapshotError: unknown = null;
  job.gate.close();
  try {
    await failpointAsync('node.frozen');
    snapshot = memory.snapshot(jobId, mode, staging);
  } catch (err) {
    snapshotError = err;
  }
  const t2 = clock.nowMs();
  try {
    await supervisor.thawJob(jobId);
  } finally {
    job.gate.open();
  }
  const t3 = clock.nowMs();
  if (!snapshot) {
    fail(job, 'snapshot', snapshotError);
    metrics.checkpointFailed('snapshot');
    throw new GridError('unavailable', `epoch ${epoch} of job ${jobId}: snapshot failed: ${message(snapshotError)}`);
  }
  return { snapshot, freezeMs: t1 - t0, snapshotMs: t2 - t1, thawMs: t3 - t2, freezeWindowMs: t3 - t0 };
}

export async function runCheckpoint(deps: AgentDeps, job: JobRecord, forceFull: boolean): Promise<CheckpointResult> {
  const { memory, config, log, metrics } = deps;
  const { clock } = deps.runtime;
  const jobId = job.spec.jobId;
  const full = forceFull || job.parentEpoch === null || job.epochsSinceFull + 1 >= job.spec.fullEvery;
  const mode = full ? 'full' : 'changed';
  const epoch = job.highestEpoch + 1n;
  job.highestEpoch = epoch;
  const { snapshot, freezeMs, snapshotMs, thawMs, freezeWindowMs } = await freezeAndSnapshot(deps, job, epoch, mode);
  const t3 = clock.nowMs();

  try {
    const part = await writeNodePart({
      storeDir: config.storeDir,
      jobId,
      epoch,
      nodeId: config.nodeId,
      staging: snapshot.staging,
      pages: snapshot.entries,
    });
    const manifest = await commitEpoch({
      storeDir: config.storeDir,
      jobId,
      epoch,
      parentEpoch: full ? null : job.parentEpoch,
      full,
      createdUnixMs: clock.wallMs(),
      containers: memory.containers(jobId).map((c) => ({ name: c.name, pageCount: c.pageCount })),
      parts: [part],
      layout: { spec: job.spec, placement: {}, partOwners: {} },
    });
    const t4 = clock.nowMs();
    job.parentEpoch = epoch;
    job.epochsSinceFull = full ? 0 : job.epochsSinceFull + 1;
    job.committed += 1;
    const result: CheckpointResult = {
      manifest,
      chainLength: job.epochsSinceFull + 1,
      freezeWindowMs,
      freezeMs,
      snapshotMs,
      thawMs,
      writeMs: t4 - t3,
      pagesSwappedIn: snapshot.pagesSwappedIn,
    };
    metrics.checkpointCommitted({
      freezeWindowMs: result.freezeWindowMs,
      writeMs: result.writeMs,
      bytes: snapshot.staging.byteLength,
      pages: snapshot.entries.length,
    });
    log.debug({ jobId, epoch: String(epoch), full, pages: snapshot.entries.length, freezeWindowMs: result.freezeWindowMs }, 'epoch committed');
    return result;
  } catch (err) {
    memory.restoreChanged(jobId, snapshot.entries);
    // Best effort: the half-written epoch has no manifest, so it is never restored either way. Not a
    // plain rm: a commit can fail after its rename (the directory's fsync), and a committed epoch stays.
    await removeIfIncomplete(config.storeDir, jobId, epoch).catch(() => undefined);
    fail(job, 'write', err);
    metrics.checkpointFailed('write');
    if (err instanceof GridError) throw err;
    throw new GridError('unavailable', `epoch ${epoch} of job ${jobId}: write failed: ${message(err)}`);
  }
}

export function fail(job: JobRecord, stage: string, err: unknown): void {
  job.failed += 1;
  job.lastError = `${stage}: ${message(err)}`;
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
