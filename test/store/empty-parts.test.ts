// Parts of no pages (epoch-writer.ts invariant 5, part-digest.ts invariant 3):
// a node with nothing changed since the parent epoch writes no file at all,
// not even the epoch directory; a round in which nothing changed anywhere is
// its manifest alone. Restores, verification and retirement still work
// across such epochs (they name their parent as any incremental epoch does:
// no epoch refers to another's files, so retention's graph is unchanged).

import { readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  commitEpoch, epochDir, listCommitted, loadEpoch, retireEpoch, stagedPartDigest, verifyEpoch, writeNodePart,
} from '../../src/store/index.js';
import { parseManifest, encodeManifest } from '../../src/store/manifest.js';
import { EMPTY_PART_DIGEST } from '../../src/store/part-digest.js';
import { collector, expectedImage, makeStoreDir, range, testLayout, writeEpoch, CONTAINERS } from './helpers.js';
import { expectSameImage } from './expect-image.js';

let store: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir: store, cleanup } = await makeStoreDir()));
afterEach(async () => cleanup());

const exists = (p: string) => stat(p).then(() => true, () => false);

describe('a part of no pages', () => {
  it('writes nothing, and its digest is the one a participant prepares for an empty staging', async () => {
    const part = await writeNodePart({ storeDir: store, jobId: 'job', epoch: 5n, nodeId: 'node-a', staging: new Uint8Array(0), pages: [] });
    expect(part).toEqual({ nodeId: 'node-a', dataFile: 'node-a.pages', tableFile: 'node-a.table', dataBytes: 0, tableBytes: 0, pageCount: 0, tableDigest: EMPTY_PART_DIGEST });
    expect(EMPTY_PART_DIGEST).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(await stagedPartDigest({ epoch: 5n, staging: new Uint8Array(0), pages: [] })).toBe(part.tableDigest);
    expect(await exists(epochDir(store, 'job', 5n))).toBe(false);
  });

  it('a round in which nothing changed leaves the manifest alone in its epoch directory', async () => {
    await writeEpoch(store, 'job', 1n, null, { 'node-a': [['bank', 0]], 'node-b': [['log', 0]] });
    const m = await writeEpoch(store, 'job', 2n, 1n, { 'node-a': [], 'node-b': [] });
    expect(await readdir(epochDir(store, 'job', 2n))).toEqual(['MANIFEST.json']);
    expect(m.parts.map((p) => [p.nodeId, p.tableBytes, p.pageCount])).toEqual([['node-a', 0, 0], ['node-b', 0, 0]]);
    expect(await verifyEpoch(store, 'job', 2n)).toEqual({ ok: true, epoch: 2n, pagesChecked: 2, errors: [] });
  });

  it('restores exactly across a mix of empty and non-empty epochs, and survives retiring the empty ones', async () => {
    const history: Array<{ epoch: bigint; parent: bigint | null; parts: Record<string, Array<[string, number]>> }> = [
      { epoch: 1n, parent: null, parts: { 'node-a': range(0, 8).map((p) => ['bank', p]), 'node-b': [['log', 0], ['log', 1]] } },
      { epoch: 2n, parent: 1n, parts: { 'node-a': [], 'node-b': [] } },
      { epoch: 3n, parent: 2n, parts: { 'node-a': [['bank', 2]], 'node-b': [] } },
      { epoch: 4n, parent: 3n, parts: { 'node-a': [], 'node-b': [] } },
      { epoch: 5n, parent: 4n, parts: { 'node-a': [], 'node-b': [['log', 1], ['log', 3]] } },
      { epoch: 6n, parent: 5n, parts: { 'node-a': [], 'node-b': [] } },
    ];
    for (const h of history) await writeEpoch(store, 'job', h.epoch, h.parent, h.parts);
    for (const h of history) {
      const got = collector();
      const chain = history.filter((x) => x.epoch <= h.epoch).map((x) => ({ epoch: x.epoch, pages: Object.values(x.parts).flat() }));
      const loaded = await loadEpoch(store, 'job', h.epoch, got.sink);
      expectSameImage(got.pages, expectedImage(chain), `epoch ${h.epoch}`);
      expect(loaded.chain.map((c) => c.epoch)).toEqual(chain.map((c) => c.epoch).reverse());
      expect((await verifyEpoch(store, 'job', h.epoch)).ok).toBe(true);
    }
    // Retiring an epoch that is only a manifest removes it whole; the others restore as before.
    expect(await retireEpoch(store, 'job', 6n).catch((e: unknown) => (e as Error).message)).toMatch(/newest committed epoch/);
    await writeEpoch(store, 'job', 7n, null, { 'node-a': range(0, 8).map((p) => ['bank', p]), 'node-b': [['log', 0]] });
    expect(await retireEpoch(store, 'job', 6n)).toBe('retired');
    expect(await exists(epochDir(store, 'job', 6n))).toBe(false);
    expect((await listCommitted(store, 'job')).map((x) => x.epoch)).toEqual([1n, 2n, 3n, 4n, 5n, 7n]);
    const got = collector();
    await loadEpoch(store, 'job', 5n, got.sink);
    expectSameImage(got.pages, expectedImage(history.slice(0, 5).map((x) => ({ epoch: x.epoch, pages: Object.values(x.parts).flat() }))), 'epoch 5 after retiring 6');
  });

  it('a manifest naming an empty table with pages (or data, or another digest) is refused', async () => {
    const part = await writeNodePart({ storeDir: store, jobId: 'job', epoch: 1n, nodeId: 'node-a', staging: new Uint8Array(0), pages: [] });
    const base = { storeDir: store, jobId: 'job', epoch: 1n, parentEpoch: null, full: true, createdUnixMs: 1, containers: CONTAINERS, layout: testLayout('job') };
    for (const bad of [{ pageCount: 1 }, { dataBytes: 4096, pageCount: 1 }, { tableDigest: 'a'.repeat(64) }]) {
      await expect(commitEpoch({ ...base, parts: [{ ...part, ...bad }] })).rejects.toThrow(/an empty table \(tableBytes 0\) must have no pages/);
    }
    const m = await commitEpoch({ ...base, parts: [part] });
    const text = new TextDecoder().decode(encodeManifest(m)).replace('"pageCount": 0', '"pageCount": 2');
    expect(() => parseManifest(text, path.join(store, 'x'))).toThrow(/invalid manifest: part node-a: an empty table \(tableBytes 0\) must have no pages/);
  });
});
