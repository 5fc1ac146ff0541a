// Removing epochs that never committed, so that no removal can ever take a
// committed one — even when a commit of the same epoch runs at the same time.
//
// Intuition: a commit is one atomic step on one name, the rename of
// MANIFEST.json.tmp onto <epochDir>/MANIFEST.json (epoch-writer.ts). A
// removal first claims that same name with mkdir: an empty *directory*
// called MANIFEST.json, the tombstone. mkdir fails if the name exists, and
// rename(2) of a file onto a directory fails (EISDIR), so of a racing commit
// and removal exactly one wins that name. Looking for the manifest and then
// deleting (what this replaced) has a window in which the manifest lands
// and the committed epoch is deleted with the rest.
// Once claimed, the directory is renamed out of the epoch namespace (so no
// writer can recreate entries in it) and deleted there.
//
// Invariants:
//   1. An epoch whose MANIFEST.json is a file (valid or not) is never removed
//      or moved: removal proceeds only after its own mkdir of the tombstone
//      succeeded, or after finding a tombstone an interrupted removal left.
//   2. A claimed epoch can never become committed: a commit's rename onto the
//      tombstone fails, and after the move its directory no longer exists.
//   3. A removal interrupted at any step leaves either an uncommitted epoch
//      directory (tombstone or not) or a trash directory (`.removing-*`, never
//      listed as an epoch); the next removal finishes either.
// Who may call this, and when, is the committer's business: removing an
// epoch that writers are still filling makes their writes fail (see
// src/cluster/epoch-sweeper.ts). Environment failures are thrown as they are.

import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rename } from 'node:fs/promises';
import * as path from 'node:path';
import { isErrno, removeTreeDurable } from '../runtime/durable-fs.js';
import { listEpochDirs, manifestPresent } from './epoch-catalog.js';
import { MANIFEST_FILE, epochDir, epochDirName, jobDir } from './layout.js';

const TRASH_PREFIX = '.removing-';

type Claim = 'claimed' | 'committed' | 'gone';

/** Takes the manifest's name so no commit can land (invariants 1, 2). */
async function claim(dir: string): Promise<Claim> {
  const name = path.join(dir, MANIFEST_FILE);
  try {
    await mkdir(name);
    return 'claimed';
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 'gone';
    if (!isErrno(err, 'EEXIST')) throw err;
  }
  try {
    return (await lstat(name)).isDirectory() ? 'claimed' : 'committed';
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 'gone'; // another removal took it meanwhile
    throw err;
  }
}

/**
 * Removes epoch `epoch` of the job unless it is committed. Resolves true when
 * it removed it, false when the epoch is committed (or was committed first)
 * or has no directory.
 */
export async function removeIfIncomplete(storeDir: string, jobId: string, epoch: bigint, hooks: RemoveHooks = {}): Promise<boolean> {
  const dir = epochDir(storeDir, jobId, epoch);
  if ((await claim(dir)) !== 'claimed') return false;
  await hooks.pause?.('claimed');
  const trash = path.join(jobDir(storeDir, jobId), `${TRASH_PREFIX}${epochDirName(epoch)}-${randomBytes(6).toString('hex')}`);
  try {
    await rename(dir, trash);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false; // a concurrent removal moved it first
    throw err;
  }
  await hooks.pause?.('moved');
  await removeTreeDurable(trash);
  return true;
}

/** The steps of a removal, in order; `claimed` is the point after which no commit can land. */
export type RemoveStep = 'claimed' | 'moved';

/** A seam for tests that interleave a removal with a commit deterministically (see CommitHooks). */
export interface RemoveHooks {
  pause?: (step: RemoveStep) => Promise<void>;
}

export interface RemoveOptions extends RemoveHooks {
  /** Only epochs strictly below this one (the caller knows those can no longer commit). */
  below?: bigint;
}

/**
 * Removes every uncommitted epoch of the job (below `opts.below` if given),
 * and what interrupted removals left; ascending list of the epochs removed.
 */
export async function removeIncomplete(storeDir: string, jobId: string, opts: RemoveOptions = {}): Promise<bigint[]> {
  const removed: bigint[] = [];
  for (const epoch of await listEpochDirs(storeDir, jobId)) {
    if (opts.below !== undefined && epoch >= opts.below) continue;
    // A cheap skip (one stat, no read or digest check of a committed manifest); claim() decides.
    if (await manifestPresent(storeDir, jobId, epoch)) continue;
    if (await removeIfIncomplete(storeDir, jobId, epoch, opts)) removed.push(epoch);
  }
  await removeTrash(storeDir, jobId);
  return removed;
}

/** Trash of interrupted removals: claimed, so never a committed epoch (invariant 3). */
async function removeTrash(storeDir: string, jobId: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(jobDir(storeDir, jobId));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw err;
  }
  for (const name of names) {
    if (name.startsWith(TRASH_PREFIX)) await removeTreeDurable(path.join(jobDir(storeDir, jobId), name));
  }
}
