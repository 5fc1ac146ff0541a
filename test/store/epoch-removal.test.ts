// Removing incomplete epochs through real files (src/store/epoch-removal.ts):
// what is removed and what stays (invariant 1), the tombstone that makes a
// claimed epoch uncommittable (2), leftovers of an interrupted removal (3),
// and removals racing commits of the same epoch: a committed epoch is never
// removed, whatever the interleaving (ARCHITECTURE §3.3).

import { mkdir, readdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GridError } from '../../src/common/errors.js';
import {
  commitEpoch, epochDir, listCommitted, loadEpoch, removeIfIncomplete, removeIncomplete, writeNodePart, type CommitHooks, type PartInfo,
} from '../../src/store/index.js';
import { CONTAINERS, collector, expectedImage, makeStoreDir, stage, testLayout, writeEpoch } from './helpers.js';
import { expectSameImage } from './expect-image.js';
import { Stepper, interleavings } from './stepper.js';

let store: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir: store, cleanup } = await makeStoreDir()));
afterEach(async () => cleanup());

const PAGES_A: Array<[string, number]> = [['bank', 0], ['bank', 1], ['log', 0]];
const PAGES_B: Array<[string, number]> = [['bank', 2], ['log', 1]];

/** Both parts of a full epoch, written and durable, not committed. */
async function writeParts(epoch: bigint, jobId = 'job'): Promise<PartInfo[]> {
  return [
    await writeNodePart({ storeDir: store, jobId, epoch, nodeId: 'node-a', ...stage(epoch, PAGES_A) }),
    await writeNodePart({ storeDir: store, jobId, epoch, nodeId: 'node-b', ...stage(epoch, PAGES_B) }),
  ];
}

function commit(epoch: bigint, parts: PartInfo[], jobId = 'job', hooks: CommitHooks = {}) {
  return commitEpoch(
    { storeDir: store, jobId, epoch, parentEpoch: null, full: true, createdUnixMs: 1, containers: CONTAINERS, parts, layout: testLayout(jobId) },
    hooks,
  );
}

async function expectRestores(epoch: bigint, jobId = 'job'): Promise<void> {
  const got = collector();
  await loadEpoch(store, jobId, epoch, got.sink);
  expectSameImage(got.pages, expectedImage([{ epoch, pages: [...PAGES_A, ...PAGES_B] }]), `epoch ${epoch}`);
}

const committedEpochs = async (jobId = 'job') => (await listCommitted(store, jobId)).map((m) => m.epoch);
const exists = (epoch: bigint) => readdir(epochDir(store, 'job', epoch)).then(() => true, () => false);

describe('removeIncomplete', () => {
  it('removes epochs without a manifest, below a bound if given, and keeps committed ones (invariant 1)', async () => {
    await writeEpoch(store, 'job', 1n, null, { 'node-a': PAGES_A });
    await writeParts(2n);
    await writeEpoch(store, 'job', 3n, null, { 'node-a': PAGES_A });
    await writeParts(4n);
    await writeParts(5n);
    expect(await removeIncomplete(store, 'job', { below: 5n })).toEqual([2n, 4n]);
    expect(await exists(5n)).toBe(true);
    expect(await removeIncomplete(store, 'job')).toEqual([5n]);
    expect(await removeIncomplete(store, 'job')).toEqual([]);
    expect(await committedEpochs()).toEqual([1n, 3n]);
    expect((await readdir(path.join(store, 'job'))).sort()).toEqual(['epoch-00000000000000000001', 'epoch-00000000000000000003']);
  });

  it('never removes an epoch whose manifest file is there, even one that does not parse', async () => {
    await writeParts(1n);
    await writeFile(path.join(epochDir(store, 'job', 1n), 'MANIFEST.json'), '{ not json');
    expect(await removeIncomplete(store, 'job')).toEqual([]);
    expect(await removeIfIncomplete(store, 'job', 1n)).toBe(false);
    expect(await exists(1n)).toBe(true);
  });

  it('a committed epoch is refused by removeIfIncomplete and restores afterwards', async () => {
    await commit(1n, await writeParts(1n));
    expect(await removeIfIncomplete(store, 'job', 1n)).toBe(false);
    expect(await removeIfIncomplete(store, 'job', 9n)).toBe(false); // no such directory
    await expectRestores(1n);
  });
});

describe('the tombstone (invariants 2, 3)', () => {
  it('a claimed epoch cannot commit nor take parts, is not listed, and the next removal finishes it', async () => {
    const parts = await writeParts(1n);
    await mkdir(path.join(epochDir(store, 'job', 1n), 'MANIFEST.json')); // a removal interrupted right after its claim
    const refused = await commit(1n, parts).then(() => null, (err: unknown) => err);
    expect(refused).toBeInstanceOf(GridError);
    expect(refused).toMatchObject({ kind: 'failed-precondition', message: expect.stringMatching(/removed as incomplete/) });
    await expect(writeNodePart({ storeDir: store, jobId: 'job', epoch: 1n, nodeId: 'node-c', ...stage(1n, PAGES_A) }))
      .rejects.toMatchObject({ kind: 'failed-precondition', message: expect.stringMatching(/being removed/) });
    expect(await committedEpochs()).toEqual([]);
    expect(await removeIncomplete(store, 'job')).toEqual([1n]);
    expect(await readdir(path.join(store, 'job'))).toEqual([]);
  });

  it('trash of a removal interrupted after its move is removed, and never listed', async () => {
    await commit(1n, await writeParts(1n));
    const trash = path.join(store, 'job', '.removing-epoch-00000000000000000002-0123456789ab');
    await mkdir(path.join(trash, 'MANIFEST.json'), { recursive: true });
    expect(await committedEpochs()).toEqual([1n]);
    expect(await removeIncomplete(store, 'job')).toEqual([]);
    expect(await readdir(path.join(store, 'job'))).toEqual(['epoch-00000000000000000001']);
  });
});

describe('removal racing a commit of the same epoch', () => {
  it('every interleaving of their steps: the commit lands exactly when its rename precedes the claim, and nothing else is left', async () => {
    // A commit has 6 segments between its pauses (start, checked, dir-ready,
    // sizes-checked, manifest-written, renamed, end), a removal 3 (start,
    // claimed, moved, end); each schedule runs one segment at a time, so
    // the 84 merges of the two cover every order of their steps.
    const outcomes = { committed: 0, removed: 0 };
    const seen = new Set<string>();
    for (const [i, order] of interleavings(6, 3).entries()) {
      const jobId = `race-${i}`;
      const parts = await writeParts(1n, jobId);
      const committer = new Stepper<boolean>((pause) => commit(1n, parts, jobId, { pause }).then(
        () => true,
        (err: unknown) => {
          expect(err, String(err)).toMatchObject({ kind: 'failed-precondition' });
          return false;
        },
      ));
      const remover = new Stepper<bigint[]>((pause) => removeIncomplete(store, jobId, { pause }));
      const trace: string[] = [];
      await committer.started();
      await remover.started();
      for (const who of order) {
        const step = await (who === 'a' ? committer : remover).advance();
        if (step !== null) trace.push(`${who === 'a' ? 'commit' : 'removal'}:${step}`);
      }
      const landed = await committer.result();
      const removed = await remover.result();
      seen.add(trace.join(' '));
      const renamedAt = trace.indexOf('commit:renamed');
      const claimedAt = trace.indexOf('removal:claimed');
      const what = `schedule ${trace.join(' ')}`;
      expect(landed, what).toBe(renamedAt >= 0 && (claimedAt < 0 || renamedAt < claimedAt));
      if (landed) {
        outcomes.committed += 1;
        expect(removed, what).toEqual([]);
        expect(await committedEpochs(jobId), what).toEqual([1n]);
        await expectRestores(1n, jobId);
        expect(await removeIncomplete(store, jobId), what).toEqual([]);
      } else {
        outcomes.removed += 1;
        expect(removed, what).toEqual([1n]);
        expect(await committedEpochs(jobId), what).toEqual([]);
        // A commit resumed after the move recreates an empty directory (and then fails): the next removal takes it.
        await removeIncomplete(store, jobId);
        expect(await readdir(path.join(store, jobId)), what).toEqual([]);
      }
    }
    expect(outcomes.committed).toBeGreaterThan(0);
    expect(outcomes.removed).toBeGreaterThan(0);
    expect(seen.size).toBeGreaterThan(10); // the schedules really differ (a process that finished early collapses some)
  });

  it('under real concurrency, either the commit lands and the epoch stays committed and restorable, or the commit fails and the epoch is gone', async () => {
    // No pauses: the file system interleaves the two at will. Which side wins
    // is timing (the interleavings above reach both); what must hold is checked on each try.
    // The removal starts at offsets spread over the commit's own duration and
    // then repeats until the commit has settled, so it is at every step of the
    // commit at once: before, inside and after the manifest's rename.
    const t0 = performance.now();
    await commit(1n, await writeParts(1n));
    const commitMs = Math.max(1, performance.now() - t0);
    const outcomes = { committed: 0, removed: 0 };
    for (let i = 0; i < 60; i += 1) {
      const epoch = 2n + BigInt(i);
      const parts = await writeParts(epoch);
      let settled = false;
      const committing = commit(epoch, parts).then(
        () => true,
        (err: unknown) => {
          expect(err, String(err)).toMatchObject({ kind: 'failed-precondition' });
          return false;
        },
      ).finally(() => (settled = true));
      const removing = (async () => {
        await new Promise((r) => setTimeout(r, ((i % 12) / 12) * commitMs * 1.5));
        const removed: bigint[] = [];
        do removed.push(...(await removeIncomplete(store, 'job'))); while (!settled);
        removed.push(...(await removeIncomplete(store, 'job')));
        return removed;
      })();
      const [landed, removed] = await Promise.all([committing, removing]);
      const listed = await committedEpochs();
      if (landed) {
        outcomes.committed += 1;
        expect(removed, `epoch ${epoch}: committed, yet removed`).not.toContain(epoch);
        expect(listed, `epoch ${epoch}: committed, yet not listed`).toContain(epoch);
        await expectRestores(epoch);
      } else {
        outcomes.removed += 1;
        // A commit that starts after the move recreates an empty directory (and then fails): removed again.
        expect(removed.length).toBeGreaterThan(0);
        expect(removed.every((e) => e === epoch)).toBe(true);
        expect(listed).not.toContain(epoch);
        expect(await exists(epoch)).toBe(false);
      }
    }
    expect(await readdir(path.join(store, 'job'))).toHaveLength(1 + outcomes.committed); // nothing else left behind
    console.log(`removal vs commit: ${outcomes.committed} committed first, ${outcomes.removed} removed first (commit ~${commitMs.toFixed(1)} ms)`);
  });
});
