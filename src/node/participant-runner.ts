import { GridError } from '../common/errors.js';
import type { AgentDeps } from './agent.js';
import type { JobRecord } from './job-record.js';
import { freezeAndSnapshot, fail, message } from './checkpoint-runner.js';
import { stagedPartDigest, writeNodePart, type PartInfo } from '../store/index.js';

// The node agent as a participant in a coordinated round (ARCHITECTURE §4).
//   prepare(epoch): freeze → snapshot changed pages into staging → thaw; keep it staged.
//   commit(epoch):  write the staged pages as this node's part; durable on return.
//   abort(epoch):   drop what is staged or written-but-unconfirmed; pages changed again.
// The agent never learns directly whether the coordinator's manifest landed:
// the next prepare tells it, by naming the epoch it builds on. A written part
// whose epoch is not that parent was never committed, so its pages are marked
// changed again before the new snapshot — no change is ever lost between epochs.
// Fencing: a message from a coordinator incarnation older than one seen, or
// for an epoch not above every epoch this job has prepared, is refused.

export type { Fence } from '../wire/codec.js';
import type { Fence } from '../wire/codec.js';

export interface PrepareResult {
  epoch: bigint;
  pages: number;
  bytes: number;
  freezeWindowMs: number;
  /** The tableDigest commit's part will have (part-digest.ts); computed after the thaw. */
  digest: string;
}

export interface CommitResult {
  epoch: bigint;
  part: PartInfo;
  containers: Array<{ name: string; pageCount: number }>;
  writeMs: number;
}

function checkFence(job: JobRecord, fence: Fence): void {
  const key = `${fence.clusterId}/${fence.nodeId}`;
  const seen = job.fences.get(key);
  if (seen !== undefined && fence.incarnation < seen) {
    throw new GridError('failed-precondition', `fenced: coordinator ${key} incarnation ${fence.incarnation} is older than ${seen}`);
  }
  job.fences.set(key, fence.incarnation);
}

/** Marks pages changed again for anything staged or written but never confirmed. */
function settleUnconfirmed(deps: AgentDeps, job: JobRecord, parentEpoch: bigint | null): void {
  const jobId = job.spec.jobId;
  if (job.staged) {
    deps.memory.restoreChanged(jobId, job.staged.snapshot.entries);
    job.staged = null;
  }
  if (job.unconfirmed) {
    if (job.unconfirmed.epoch !== parentEpoch) deps.memory.restoreChanged(jobId, job.unconfirmed.entries);
    job.unconfirmed = null;
  }
}

export async function prepareParticipant(deps: AgentDeps, job: JobRecord, fence: Fence, parentEpoch: bigint | null, full: boolean): Promise<PrepareResult> {
  checkFence(job, fence);
  if (fence.epoch <= job.highestEpoch) {
    throw new GridError('aborted', `stale prepare: epoch ${fence.epoch} of job ${job.spec.jobId} is not above epoch ${job.highestEpoch}`);
  }
  if (!full && parentEpoch === null) throw new GridError('invalid-argument', 'an incremental epoch needs a parent epoch');
  settleUnconfirmed(deps, job, parentEpoch);
  job.highestEpoch = fence.epoch;
  const frozen = await freezeAndSnapshot(deps, job, fence.epoch, full ? 'full' : 'changed');
  job.staged = { epoch: fence.epoch, parentEpoch: full ? null : parentEpoch, snapshot: frozen.snapshot };
  // Thawed already: the digest's CRCs never lengthen the freeze window.
  const digest = await stagedPartDigest({ epoch: fence.epoch, staging: frozen.snapshot.staging, pages: frozen.snapshot.entries });
  return {
    epoch: fence.epoch,
    pages: frozen.snapshot.pageCount,
    bytes: frozen.snapshot.staging.byteLength,
    freezeWindowMs: frozen.freezeWindowMs,
    digest,
  };
}

export async function commitParticipant(deps: AgentDeps, job: JobRecord, fence: Fence): Promise<CommitResult> {
  checkFence(job, fence);
  const staged = job.staged;
  if (!staged || staged.epoch !== fence.epoch) {
    throw new GridError('failed-precondition', `nothing prepared for epoch ${fence.epoch} of job ${job.spec.jobId}${staged ? ` (epoch ${staged.epoch} is)` : ''}`);
  }
  const { config, memory } = deps;
  const { clock } = deps.runtime;
  const t0 = clock.nowMs();
  try {
    const part = await writeNodePart({
      storeDir: config.storeDir,
      jobId: job.spec.jobId,
      epoch: staged.epoch,
      nodeId: config.nodeId,
      staging: staged.snapshot.staging,
      pages: staged.snapshot.entries,
    });
    job.staged = null;
    job.unconfirmed = { epoch: staged.epoch, entries: staged.snapshot.entries };
    const containers = memory.containers(job.spec.jobId).map((c) => ({ name: c.name, pageCount: c.pageCount }));
    return { epoch: staged.epoch, part, containers, writeMs: clock.nowMs() - t0 };
  } catch (err) {
    memory.restoreChanged(job.spec.jobId, staged.snapshot.entries);
    job.staged = null;
    fail(job, 'write', err);
    if (err instanceof GridError) throw err;
    throw new GridError('unavailable', `epoch ${staged.epoch} of job ${job.spec.jobId}: write failed: ${message(err)}`);
  }
}

export function abortParticipant(deps: AgentDeps, job: JobRecord, fence: Fence): boolean {
  checkFence(job, fence);
  const jobId = job.spec.jobId;
  if (job.staged?.epoch === fence.epoch) {
    deps.memory.restoreChanged(jobId, job.staged.snapshot.entries);
    job.staged = null;
    return true;
  }
  if (job.unconfirmed?.epoch === fence.epoch) {
    deps.memory.restoreChanged(jobId, job.unconfirmed.entries);
    job.unconfirmed = null;
    return true;
  }
  return false;
}
