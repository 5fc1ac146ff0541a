// Zero pages (part-plan.ts invariant 3, page-table.ts format 2, part-reader.ts
// invariant 4): an all-zero page is flagged in the page table, never written
// to the data file; a restore delivers zeros for it, checked against the CRC
// its entry carries; the prepared digest still equals the written table's.

import { readFile, stat, truncate } from 'node:fs/promises';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PAGE_BYTES, commitEpoch, epochDir, loadEpoch, stagedPartDigest, verifyEpoch, writeNodePart, type PartPage } from '../../src/store/index.js';
import { IO_CHUNK_BYTES } from '../../src/store/layout.js';
import { collector, makeStoreDir, pageBytes, range, testLayout } from './helpers.js';

let store: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir: store, cleanup } = await makeStoreDir()));
afterEach(async () => cleanup());

/** Staging for `count` pages of container c; pages in `written` hold pageBytes content, the rest zeros. */
function staged(epoch: bigint, count: number, written: ReadonlySet<number>): { staging: Uint8Array; pages: PartPage[] } {
  const staging = new Uint8Array(count * PAGE_BYTES);
  const pages: PartPage[] = [];
  for (let p = 0; p < count; p++) {
    if (written.has(p)) staging.set(pageBytes(epoch, 'c', p), p * PAGE_BYTES);
    pages.push({ container: 'c', page: p, version: epoch, stagingOffset: p * PAGE_BYTES });
  }
  return { staging, pages };
}

async function commit(epoch: bigint, parent: bigint | null, count: number, written: ReadonlySet<number>) {
  const part = staged(epoch, count, written);
  const prepared = await stagedPartDigest({ epoch, ...part });
  const info = await writeNodePart({ storeDir: store, jobId: 'j', epoch, nodeId: 'n1', ...part });
  expect(info.tableDigest).toBe(prepared); // the digest a participant PREPARED is the table written
  await commitEpoch({
    storeDir: store, jobId: 'j', epoch, parentEpoch: parent, full: parent === null, createdUnixMs: 1,
    containers: [{ name: 'c', pageCount: count }], parts: [info], layout: testLayout('j'),
  });
  return info;
}

describe('zero pages', () => {
  it('a 16,384-page container nobody wrote is an epoch without page data, restored as zeros and verified', async () => {
    const info = await commit(1n, null, 16_384, new Set());
    expect(info.dataBytes).toBe(0);
    expect(info.pageCount).toBe(16_384);
    expect((await stat(path.join(epochDir(store, 'j', 1n), 'n1.pages'))).size).toBe(0);
    // The table is the whole epoch: 16,384 rows of 36 bytes, against 64 MiB of zeros before.
    expect(info.tableBytes).toBeLessThan(16_384 * 40);
    const got = collector();
    expect((await loadEpoch(store, 'j', 1n, got.sink)).pagesLoaded).toBe(16_384);
    expect([...got.pages.values()].every((d) => d.every((b) => b === 0))).toBe(true);
    expect(await verifyEpoch(store, 'j', 1n)).toEqual({ ok: true, epoch: 1n, pagesChecked: 16_384, errors: [] });
  });

  it('mixes zero and written pages; a page zeroed in an incremental epoch restores as zeros over its parent', async () => {
    const first = await commit(1n, null, 8, new Set([1, 2, 5]));
    expect(first.dataBytes).toBe(3 * PAGE_BYTES);
    // Epoch 2: page 2 zeroed, page 3 written, the rest as in epoch 2's staging (zeros except 3).
    await commit(2n, 1n, 8, new Set([3]));
    const got = collector();
    await loadEpoch(store, 'j', 2n, got.sink);
    for (let p = 0; p < 8; p++) {
      const want = p === 3 ? pageBytes(2n, 'c', 3) : new Uint8Array(PAGE_BYTES);
      expect(Buffer.from(got.pages.get(`c#${p}`)!).equals(Buffer.from(want)), `page ${p}`).toBe(true);
    }
    const old = collector();
    await loadEpoch(store, 'j', 1n, old.sink);
    expect(Buffer.from(old.pages.get('c#5')!).equals(Buffer.from(pageBytes(1n, 'c', 5)))).toBe(true);
    expect((await verifyEpoch(store, 'j', 2n)).ok).toBe(true);
  });

  it('zero pages in several write chunks, and a run of data across a chunk boundary: the file holds exactly the others, in order', async () => {
    const chunkPages = IO_CHUNK_BYTES / PAGE_BYTES;
    const count = chunkPages + 600;
    const written = new Set([0, 1, 5, ...range(chunkPages - 3, chunkPages + 4), count - 1]);
    for (let p = 100; p < count; p += 97) written.add(p);
    const info = await commit(1n, null, count, written);
    expect(info.dataBytes).toBe(written.size * PAGE_BYTES);
    const data = await readFile(path.join(epochDir(store, 'j', 1n), 'n1.pages'));
    const order = [...written].sort((a, b) => a - b);
    for (const [k, p] of order.entries()) {
      if (!data.subarray(k * PAGE_BYTES, (k + 1) * PAGE_BYTES).equals(Buffer.from(pageBytes(1n, 'c', p)))) expect.fail(`slot ${k} of the data file is not page ${p}`);
    }
    const got = collector();
    await loadEpoch(store, 'j', 1n, got.sink);
    for (let p = 0; p < count; p++) {
      const want = written.has(p) ? pageBytes(1n, 'c', p) : new Uint8Array(PAGE_BYTES);
      if (!Buffer.from(got.pages.get(`c#${p}`)!).equals(Buffer.from(want))) expect.fail(`page ${p} restored wrong`);
    }
  });

  it('a data file with bytes for a zero page, or missing a written one, is data loss', async () => {
    await commit(1n, null, 4, new Set([0]));
    const data = path.join(epochDir(store, 'j', 1n), 'n1.pages');
    await truncate(data, 2 * PAGE_BYTES);
    const v = await verifyEpoch(store, 'j', 1n);
    expect(v.ok).toBe(false);
    expect(v.errors.join('\n')).toMatch(/data file has 8192 bytes, manifest says 4096/);
    await truncate(data, 0);
    await expect(loadEpoch(store, 'j', 1n, () => undefined)).rejects.toThrow(/page c#0 \(offset 0\): cut off, data file has 0 bytes/);
  });
});
