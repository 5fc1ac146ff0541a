// Retiring committed epochs (src/store/epoch-retire.ts): the newest is refused
// (invariant 3); a retirement demotes the manifest first, so a reader never
// lists a half-deleted epoch (1, 2); an interrupted one — demoted, or claimed
// too — is finished by the next retirement or by the sweep of incomplete
// epochs (4).

import { mkdir, readdir, rename } from 'node:fs/promises';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GridError } from '../../src/common/errors.js';
import { RETIRED_FILE, epochDir, listCommitted, removeIncomplete, retireEpoch, verifyEpoch } from '../../src/store/index.js';
import { MANIFEST_FILE } from '../../src/store/layout.js';
import { makeStoreDir, writeEpoch } from './helpers.js';

let store: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir: store, cleanup } = await makeStoreDir()));
afterEach(async () => cleanup());

const committed = async () => (await listCommitted(store, 'job')).map((m) => m.epoch);
const dirs = async () => (await readdir(path.join(store, 'job'))).sort();

async function three(): Promise<void> {
  await writeEpoch(store, 'job', 1n, null, { 'node-a': [['bank', 0], ['log', 0]] });
  await writeEpoch(store, 'job', 2n, null, { 'node-a': [['bank', 1]] });
  await writeEpoch(store, 'job', 3n, 2n, { 'node-a': [['bank', 2]] });
}

describe('retireEpoch', () => {
  it('removes a committed epoch whole and refuses the newest', async () => {
    await three();
    expect(await retireEpoch(store, 'job', 1n)).toBe('retired');
    expect(await committed()).toEqual([2n, 3n]);
    expect(await dirs()).toEqual(['epoch-00000000000000000002', 'epoch-00000000000000000003']);
    const err = await retireEpoch(store, 'job', 3n).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GridError);
    expect((err as GridError).message).toMatch(/epoch 3 of job job is its newest committed epoch/);
    expect((await verifyEpoch(store, 'job', 3n)).ok).toBe(true);
    expect(await retireEpoch(store, 'job', 1n)).toBe('gone');
  });

  it('an interrupted retirement (demoted, or claimed too) is no committed epoch, and is finished later', async () => {
    await three();
    // Killed right after the demotion: a reader no longer lists it.
    await rename(path.join(epochDir(store, 'job', 1n), MANIFEST_FILE), path.join(epochDir(store, 'job', 1n), RETIRED_FILE));
    expect(await committed()).toEqual([2n, 3n]);
    expect(await retireEpoch(store, 'job', 1n)).toBe('retired');
    expect(await dirs()).toHaveLength(2);
    // Killed after the tombstone claim: the sweep of incomplete epochs below the newest finishes it.
    await writeEpoch(store, 'job', 4n, 3n, { 'node-a': [['bank', 3]] });
    await rename(path.join(epochDir(store, 'job', 2n), MANIFEST_FILE), path.join(epochDir(store, 'job', 2n), RETIRED_FILE));
    await mkdir(path.join(epochDir(store, 'job', 2n), MANIFEST_FILE));
    expect(await committed()).toEqual([3n, 4n]);
    expect(await removeIncomplete(store, 'job', { below: 4n })).toEqual([2n]);
    expect(await dirs()).toEqual(['epoch-00000000000000000003', 'epoch-00000000000000000004']);
  });
});
