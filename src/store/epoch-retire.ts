// Retiring a committed epoch: garbage collection's one deletion (which epochs
// may go is the retention core's decision: src/cluster/core/retention.ts).
//
// Intuition: an epoch is committed exactly while <epochDir>/MANIFEST.json is
// a file (epoch-catalog.ts invariant 1). Retiring first *demotes* it — one
// atomic rename of MANIFEST.json to RETIRED.json, then an fsync of the epoch
// directory — so that from that instant no reader can take it for committed,
// and only then deletes its files, through the removal of incomplete epochs
// (epoch-removal.ts: tombstone claim, move to trash, delete). A crash at any
// point leaves one of: the epoch still committed and whole (the rename did not
// land: the next collection retires it again), an uncommitted epoch directory
// (demoted, perhaps claimed: removeIncomplete, which the sweeper runs below
// every committed epoch, finishes it), or a trash directory (removed by the
// same sweep). Nothing a later collection cannot clean, nothing retained lost.
//
// Invariants:
//   1. Nothing of an epoch is deleted before its demotion is durable (the
//      rename, then the directory's fsync).
//   2. A reader sees either the whole committed epoch or no committed epoch:
//      the manifest disappears first, the parts after.
//   3. Only a committed epoch that is not the newest committed one of its job
//      is ever demoted (the newest is the job's restore point, and the parent
//      of its next epoch); asking for the newest is a bug of the caller.
//   4. Retiring an epoch found already demoted (an interrupted retirement)
//      finishes its removal; one already gone is reported gone.
// Failpoints (crash tests): gc.before-demote, gc.after-demote, gc.after-claim,
// gc.after-move, gc.after-remove.

import { rename, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { GridError } from '../common/errors.js';
import { failpoint } from '../common/failpoints.js';
import { fsyncPath, isErrno } from '../runtime/durable-fs.js';
import { listEpochDirs, lookupManifest } from './epoch-catalog.js';
import { removeIfIncomplete } from './epoch-removal.js';
import { MANIFEST_FILE, epochDir } from './layout.js';

/** What a demoted manifest is renamed to: kept (not read by anyone) until the epoch's files go. */
export const RETIRED_FILE = 'RETIRED.json';

export type RetireResult = 'retired' | 'gone';

/** Retires committed epoch `epoch` of the job (invariants 1-4). */
export async function retireEpoch(storeDir: string, jobId: string, epoch: bigint): Promise<RetireResult> {
  const dir = epochDir(storeDir, jobId, epoch);
  const manifest = path.join(dir, MANIFEST_FILE);
  const kind = await kindOf(manifest);
  if (kind === 'file') {
    await refuseNewest(storeDir, jobId, epoch);
    failpoint('gc.before-demote');
    await rename(manifest, path.join(dir, RETIRED_FILE));
    await fsyncPath(dir);
    failpoint('gc.after-demote');
  } else if (kind === 'none' && (await kindOf(dir)) === 'none') {
    return 'gone';
  }
  // Demoted now (or by an interrupted retirement, or claimed by a removal): an incomplete epoch.
  const removed = await removeIfIncomplete(storeDir, jobId, epoch, {
    pause: async (step) => failpoint(step === 'claimed' ? 'gc.after-claim' : 'gc.after-move'),
  });
  failpoint('gc.after-remove');
  return removed ? 'retired' : 'gone';
}

/** Invariant 3: the newest committed epoch is never demoted. */
async function refuseNewest(storeDir: string, jobId: string, epoch: bigint): Promise<void> {
  const epochs = await listEpochDirs(storeDir, jobId);
  for (let i = epochs.length - 1; i >= 0 && epochs[i]! > epoch; i--) {
    if ((await lookupManifest(storeDir, jobId, epochs[i]!)).kind === 'committed') return;
  }
  throw new GridError('failed-precondition', `epoch ${epoch} of job ${jobId} is its newest committed epoch: it is never retired`);
}

async function kindOf(file: string): Promise<'none' | 'file' | 'dir'> {
  try {
    return (await stat(file)).isDirectory() ? 'dir' : 'file';
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return 'none';
    throw err;
  }
}
