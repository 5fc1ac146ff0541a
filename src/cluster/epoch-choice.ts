import { GridError } from '../common/errors.js';
import { epochChain } from '../store/index.js';
import { describeSkipped, newestRestorable, whyNotRestorable } from '../store/restorable.js';
import type { SkippedEpoch } from '../store/walk-back.js';
import { holdersAtEpoch, MAX_WALK_BACK_CANDIDATES } from './core/node-recovery.js';
import type { ClusterJob } from './cluster-job.js';

// Which epoch a node recovery restores (ARCHITECTURE §3 invariant 6): the
// job's last epoch if its whole chain verifies, else the newest older epoch
// of the job's history that does — every node the same one. The record then
// says what was restored: lastEpoch, the epochs it built on, who loads whose
// parts, and a full next round (parts of the abandoned epochs no longer count).
// Verifying reads the chain once more than the agents' loads do; a recovery
// is rare, and a damaged epoch found here costs no restore of any node.

export interface EpochChoice {
  /** Null: nothing was ever committed; the units start anew. */
  epoch: bigint | null;
  /** Newer epochs passed over, and why. */
  skipped: SkippedEpoch[];
}

export async function chooseRestoreEpoch(storeDir: string, job: ClusterJob, bad: ReadonlyMap<bigint, string>): Promise<EpochChoice> {
  const last = job.lastEpoch;
  if (last === null) return { epoch: null, skipped: [] };
  await checkAdopted(job);
  const named = [...job.committedHere, last].filter((e) => e <= last);
  const unusable = new Map(bad);
  for (;;) {
    const found = await newestRestorable(storeDir, job.jobId, named, { maxCandidates: MAX_WALK_BACK_CANDIDATES, bad: unusable });
    if (found.manifest === null) {
      throw new GridError('data-loss', `no committed epoch of job ${job.jobId} restores: ${describeSkipped(found.skipped)}`);
    }
    const epoch = found.manifest.epoch;
    if (epoch === last) return { epoch, skipped: found.skipped };
    if (job.adopted.length > 0) {
      // The adopted units' pages are in another cluster's store at the grid's epoch: only the grid can roll back both.
      throw new GridError('data-loss', `epoch ${last} of job ${job.jobId} does not restore and units adopted at that epoch cannot roll back here: ${describeSkipped(found.skipped)}`);
    }
    const layout = found.manifest.layout;
    const writers = [...new Set((await epochChain(storeDir, job.jobId, epoch)).flatMap((m) => m.parts.map((p) => p.nodeId)))];
    const laid = Object.keys(layout.placement).length > 0
      ? holdersAtEpoch({ placement: layout.placement, partOwners: layout.partOwners }, writers, job.placement)
      : { ok: false as const, reason: 'its manifest records no placement' };
    if (!laid.ok) {
      unusable.set(epoch, `its parts cannot be laid out on the nodes now: ${laid.reason}`);
      continue;
    }
    job.partOwners = laid.holders;
    job.lastEpoch = epoch;
    for (const e of [...job.committedHere]) if (e > epoch) job.committedHere.delete(e);
    job.needsFull = true;
    return { epoch, skipped: found.skipped };
  }
}

/** Pages adopted from a lost cluster's store are read at exactly the grid's epoch: they must verify there. */
async function checkAdopted(job: ClusterJob): Promise<void> {
  for (const a of job.adopted) {
    const why = await whyNotRestorable(a.storeDir, job.jobId, a.epoch);
    if (why !== null) throw new GridError('data-loss', `epoch ${a.epoch} of job ${job.jobId} in the store of ${a.fromCluster} (adopted units) does not restore: ${why}`);
  }
}
