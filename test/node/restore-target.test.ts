// The restore into page memory (restore-target.ts, restore-runner.ts
// loadJobPages): pages read straight into lent frames, installed only once
// checked (epoch-reader.ts invariant 1); every lent frame is installed or
// given back (load-target.ts invariant 2, page-memory.ts invariant 2).

import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GridError } from '../../src/common/errors.js';
import { PAGE_BYTES, PageMemory, type PageMemoryConfig } from '../../src/node/memory/page-memory.js';
import { MemorySwap } from '../../src/node/memory/swap-memory.js';
import { loadJobPages } from '../../src/node/restore-runner.js';
import { offloadedBytes } from '../../src/store/crc-offload.js';
import { epochDir, listCommitted, type EpochManifest } from '../../src/store/index.js';
import { expectedImage, makeStoreDir, range, writeEpoch } from '../store/helpers.js';

let store: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir: store, cleanup } = await makeStoreDir()));
afterEach(async () => cleanup());

const CONTAINERS = [{ name: 'bank', pageCount: 48 }, { name: 'log', pageCount: 8 }];
const e1: Array<[string, number]> = [...range(0, 40).map((p) => ['bank', p] as [string, number]), ['log', 0], ['log', 1]];
const e2: Array<[string, number]> = [['bank', 3], ['bank', 4], ['bank', 41], ['log', 1]];
const e3: Array<[string, number]> = [['bank', 4], ['bank', 20], ['log', 7]];

function memory(frames: number): PageMemory {
  const config: PageMemoryConfig = { nodeId: 'n', budgetBytes: frames * PAGE_BYTES, maxContainersPerJob: 4, maxPagesPerContainer: 64, maxBatchWrites: 8, maxBatchBytes: 8 * PAGE_BYTES };
  return new PageMemory(config, new MemorySwap());
}

async function history(): Promise<EpochManifest> {
  await writeEpoch(store, 'job', 1n, null, { 'node-a': e1.slice(0, 20), 'node-b': e1.slice(20) }, CONTAINERS);
  await writeEpoch(store, 'job', 2n, 1n, { 'node-a': e2 }, CONTAINERS);
  await writeEpoch(store, 'job', 3n, 2n, { 'node-a': e3.slice(0, 1), 'node-b': e3.slice(1) }, CONTAINERS);
  return (await listCommitted(store, 'job')).at(-1)!;
}

function expectImage(mem: PageMemory, epochs: Array<{ epoch: bigint; pages: Array<[string, number]> }>): void {
  const image = expectedImage(epochs, CONTAINERS);
  for (const c of CONTAINERS) {
    for (let p = 0; p < c.pageCount; p++) {
      const want = image.get(`${c.name}#${p}`) ?? new Uint8Array(PAGE_BYTES);
      const got = mem.readPages('job', c.name, p, 1);
      if (!Buffer.from(got).equals(want)) expect.fail(`${c.name}#${p} has the wrong content`);
    }
  }
}

describe('restore into page memory', () => {
  it('reads the pages of every epoch of the chain straight into frames, exactly, and lends nothing afterwards', async () => {
    const m3 = await history();
    const mem = memory(128);
    for (const c of CONTAINERS) mem.createContainer('job', c.name, c.pageCount);
    const loaded = await loadJobPages(mem, store, 'job', m3);
    expect(loaded.pagesLoaded).toBe(new Set([...e1, ...e2, ...e3].map(([c, p]) => `${c}#${p}`)).size);
    mem.checkInvariants();
    expect(mem.stats()).toMatchObject({ framesUsed: loaded.pagesLoaded, framesLent: 0 });
    expect(mem.pageInfo('job', 'bank', 4)).toMatchObject({ changed: false, state: 'exclusive', where: 'resident', version: 1n });
    expectImage(mem, [{ epoch: 1n, pages: e1 }, { epoch: 2n, pages: e2 }, { epoch: 3n, pages: e3 }]);
    // A second restore after dropping the job gets the same frames back in order.
    mem.dropJob('job');
    for (const c of CONTAINERS) mem.createContainer('job', c.name, c.pageCount);
    await loadJobPages(mem, store, 'job', m3);
    mem.checkInvariants();
    expectImage(mem, [{ epoch: 1n, pages: e1 }, { epoch: 2n, pages: e2 }, { epoch: 3n, pages: e3 }]);
  });

  it('a budget smaller than the image: pages that find no free frame are copied in (and swapped), still exact', async () => {
    const m3 = await history();
    const mem = memory(16);
    for (const c of CONTAINERS) mem.createContainer('job', c.name, c.pageCount);
    await loadJobPages(mem, store, 'job', m3);
    mem.checkInvariants();
    expect(mem.stats().pagesSwapped).toBeGreaterThan(0);
    expectImage(mem, [{ epoch: 1n, pages: e1 }, { epoch: 2n, pages: e2 }, { epoch: 3n, pages: e3 }]);
  });

  it('a corrupt byte: the load fails naming the page, installs nothing of that part and leaves no frame lent', async () => {
    const m3 = await history();
    const pages = path.join(epochDir(store, 'job', 1n), 'node-b.pages');
    const bytes = await readFile(pages);
    bytes[5 * PAGE_BYTES + 9] = bytes[5 * PAGE_BYTES + 9]! ^ 1; // bank#25 of epoch 1
    await writeFile(pages, bytes);
    const mem = memory(128);
    for (const c of CONTAINERS) mem.createContainer('job', c.name, c.pageCount);
    const err = await loadJobPages(mem, store, 'job', m3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GridError);
    expect((err as GridError).message).toMatch(/^epoch 1: .*node-b\.pages page bank#25 \(offset 20480\): crc32c mismatch/);
    mem.checkInvariants();
    expect(mem.stats().framesLent).toBe(0); // every frame read into was installed or given back
    // Installed: the parts read before node-b's of epoch 1; none of node-b's (one read).
    for (let p = 20; p < 40; p++) if (p !== 20) expect(mem.pageInfo('job', 'bank', p).where, `bank#${p}`).toBe('zero');
    expect(mem.pageInfo('job', 'bank', 20).where).toBe('resident'); // from epoch 3
    mem.dropJob('job');
    expect(mem.stats().framesUsed).toBe(0);
    mem.checkInvariants();
  });
});

describe('restore with the CRC checks on a second thread (store/crc-offload.ts)', () => {
  // 3000 pages (~11.7 MiB) of one container in one part: each read's stretch is split, its first half checked
  // on the worker thread (frames live in shared memory), the second here.
  const BIG = [{ name: 'heap', pageCount: 3000 }];
  const all = range(0, 3000).map((p) => ['heap', p] as [string, number]);

  function bigMemory(): PageMemory {
    return new PageMemory({ nodeId: 'n', budgetBytes: 3200 * PAGE_BYTES, maxContainersPerJob: 4, maxPagesPerContainer: 4096, maxBatchWrites: 8, maxBatchBytes: 8 * PAGE_BYTES }, new MemorySwap());
  }

  it('frames are shared memory, and a large restore is exact', async () => {
    await writeEpoch(store, 'job', 1n, null, { 'node-a': all }, BIG);
    const m1 = (await listCommitted(store, 'job'))[0]!;
    const mem = bigMemory();
    expect(mem.frameChunks[0]!.buffer).toBeInstanceOf(SharedArrayBuffer);
    mem.createContainer('job', 'heap', 3000);
    const before = offloadedBytes();
    expect((await loadJobPages(mem, store, 'job', m1)).pagesLoaded).toBe(3000);
    expect(offloadedBytes() - before).toBeGreaterThanOrEqual(2 * 1024 * 1024); // about half of it, on the worker
    mem.checkInvariants();
    const image = expectedImage([{ epoch: 1n, pages: all }], BIG);
    for (let p = 0; p < 3000; p++) {
      if (!Buffer.from(mem.readPages('job', 'heap', p, 1)).equals(image.get(`heap#${p}`)!)) expect.fail(`heap#${p} has the wrong content`);
    }
  });

  it('a corrupt byte in the half the worker checks is named, and nothing of its read is installed', async () => {
    await writeEpoch(store, 'job', 1n, null, { 'node-a': all }, BIG);
    const m1 = (await listCommitted(store, 'job'))[0]!;
    const file = path.join(epochDir(store, 'job', 1n), 'node-a.pages');
    const bytes = await readFile(file);
    bytes[100 * PAGE_BYTES + 7] = bytes[100 * PAGE_BYTES + 7]! ^ 0x40; // heap#100: in the first half of the first read
    await writeFile(file, bytes);
    const mem = bigMemory();
    mem.createContainer('job', 'heap', 3000);
    const err = await loadJobPages(mem, store, 'job', m1).catch((e: unknown) => e);
    expect((err as GridError).message).toMatch(/^epoch 1: .*node-a\.pages page heap#100 \(offset 409600\): crc32c mismatch/);
    mem.checkInvariants();
    expect(mem.stats().framesLent).toBe(0);
    for (const p of [0, 100, 2999]) expect(mem.pageInfo('job', 'heap', p).where, `heap#${p}`).toBe('zero');
  });
});
