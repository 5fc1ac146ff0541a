// Round trips of the store through real files: write parts, commit, list,
// restore and verify (ARCHITECTURE §3.3 atomic commit, §3.6 verified bytes,
// §5 "restoring epoch E takes each page from the newest epoch <= E").

import { readFile, readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GridError } from '../../src/common/errors.js';
import {
  PAGE_BYTES, commitEpoch, epochChain, epochDir, listCommitted, listJobs, loadEpoch, verifyEpoch, writeNodePart,
} from '../../src/store/index.js';
import { CONTAINERS, collector, expectedImage, makeStoreDir, range, stage, testLayout, writeEpoch } from './helpers.js';
import { expectSameImage } from './expect-image.js';

let store: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir: store, cleanup } = await makeStoreDir()));
afterEach(async () => cleanup());

function rejectsWith(kind: string, pattern: RegExp) {
  return (err: unknown) => {
    expect(err).toBeInstanceOf(GridError);
    expect((err as GridError).kind).toBe(kind);
    expect((err as GridError).message).toMatch(pattern);
    return true;
  };
}

async function kindOf(p: Promise<unknown>): Promise<{ kind: string; message: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GridError) return { kind: err.kind, message: err.message };
    throw err;
  }
  throw new Error('expected a GridError, got success');
}

describe('store layout', () => {
  it('writes <job>/epoch-<20 digits>/{node.pages,node.table,MANIFEST.json}, the data file being the staging buffer as is', async () => {
    const staged = stage(1n, [['bank', 3], ['log', 0], ['bank', 1]]);
    const part = await writeNodePart({ storeDir: store, jobId: 'job-1', epoch: 1n, nodeId: 'node-a', ...staged });
    expect(part).toMatchObject({ nodeId: 'node-a', dataFile: 'node-a.pages', tableFile: 'node-a.table', dataBytes: 3 * PAGE_BYTES, pageCount: 3 });
    expect(part.tableDigest).toMatch(/^[0-9a-f]{64}$/);
    const dir = path.join(store, 'job-1', 'epoch-00000000000000000001');
    expect(epochDir(store, 'job-1', 1n)).toBe(dir);
    expect(await readdir(dir)).toEqual(['node-a.pages', 'node-a.table']);
    expect(Buffer.compare(await readFile(path.join(dir, 'node-a.pages')), staged.staging)).toBe(0);
    expect((await stat(path.join(dir, 'node-a.table'))).size).toBe(part.tableBytes);
    expect(await listCommitted(store, 'job-1')).toEqual([]); // invariant 3: parts alone commit nothing

    const manifest = await commitEpoch({
      storeDir: store, jobId: 'job-1', epoch: 1n, parentEpoch: null, full: true, createdUnixMs: 5,
      containers: CONTAINERS, parts: [part], layout: testLayout('job'),
    });
    expect((await readdir(dir)).sort()).toEqual(['MANIFEST.json', 'node-a.pages', 'node-a.table']);
    const json = JSON.parse(await readFile(path.join(dir, 'MANIFEST.json'), 'utf8'));
    expect(json).toMatchObject({ format: 'gridckpt-epoch/2', jobId: 'job-1', epoch: '1', parentEpoch: null, full: true, digest: manifest.digest });
    expect(await listCommitted(store, 'job-1')).toEqual([manifest]);
    expect(await listJobs(store)).toEqual(['job-1']);
  });
});

describe('restore composes the chain', () => {
  it('gives each page from the newest epoch <= E of the chain and nothing that no epoch holds', async () => {
    const e1 = { epoch: 1n, pages: [...range(0, 4).map((p) => ['bank', p]), ...range(4, 8).map((p) => ['bank', p]), ['log', 0], ['log', 1]] as Array<[string, number]> };
    await writeEpoch(store, 'job', 1n, null, { 'node-a': e1.pages.slice(0, 4), 'node-b': e1.pages.slice(4) });
    const e2 = { epoch: 2n, pages: [['bank', 1], ['log', 1]] as Array<[string, number]> };
    await writeEpoch(store, 'job', 2n, 1n, { 'node-a': [['bank', 1]], 'node-b': [['log', 1]] });
    const e3 = { epoch: 3n, pages: [['bank', 1], ['bank', 5], ['log', 2]] as Array<[string, number]> };
    await writeEpoch(store, 'job', 3n, 2n, { 'node-a': e3.pages });
    const e4 = { epoch: 4n, pages: [['bank', 0]] as Array<[string, number]> };
    await writeEpoch(store, 'job', 4n, null, { 'node-a': e4.pages });
    const e5 = { epoch: 5n, pages: [] as Array<[string, number]> }; // nothing changed, parent is not the latest epoch
    await writeEpoch(store, 'job', 5n, 3n, {});

    const cases: Array<[bigint, Array<typeof e1>]> = [
      [1n, [e1]], [2n, [e1, e2]], [3n, [e1, e2, e3]], [4n, [e4]], [5n, [e1, e2, e3, e5]],
    ];
    for (const [epoch, chain] of cases) {
      const got = collector();
      const result = await loadEpoch(store, 'job', epoch, got.sink);
      const expected = expectedImage(chain);
      expectSameImage(got.pages, expected, `restore of epoch ${epoch}`);
      expect(result.pagesLoaded).toBe(expected.size);
      expect(result.chain.map((m) => m.epoch)).toEqual([...chain].reverse().map((e) => e.epoch));
      const verified = await verifyEpoch(store, 'job', epoch);
      expect(verified).toEqual({ ok: true, epoch, pagesChecked: chain.reduce((n, e) => n + e.pages.length, 0), errors: [] });
    }
    expect((await listCommitted(store, 'job')).map((m) => m.epoch)).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect((await epochChain(store, 'job', 5n)).map((m) => m.epoch)).toEqual([5n, 3n, 2n, 1n]);
  });

  it('delivers part by part, newest epoch first, in file order; drops pages of containers the epoch no longer lists', async () => {
    await writeEpoch(store, 'job', 1n, null, { n: [['log', 3], ['bank', 7], ['bank', 0], ['log', 0]] });
    const order: string[] = [];
    await loadEpoch(store, 'job', 1n, (c, p) => order.push(`${c}#${p}`));
    expect(order).toEqual(['log#3', 'bank#7', 'bank#0', 'log#0']);
    const shrunk = [{ name: 'bank', pageCount: 4 }];
    await writeEpoch(store, 'job', 2n, 1n, { n: [['bank', 2]] }, shrunk);
    const got: string[] = [];
    await loadEpoch(store, 'job', 2n, (c, p) => got.push(`${c}#${p}`));
    expect(got).toEqual(['bank#2', 'bank#0']);
  });

  it('restores pages whose staging offsets are not in table order', async () => {
    const order: Array<[string, number]> = [['bank', 5], ['log', 1], ['bank', 0], ['bank', 3]];
    const slots = [2, 0, 3, 1];
    const staged = stage(1n, order);
    const staging = new Uint8Array(staged.staging.byteLength);
    const pages = staged.pages.map((p, i) => {
      staging.set(staged.staging.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES), slots[i]! * PAGE_BYTES);
      return { ...p, stagingOffset: slots[i]! * PAGE_BYTES };
    });
    const part = await writeNodePart({ storeDir: store, jobId: 'job', epoch: 1n, nodeId: 'n', staging, pages });
    await commitEpoch({ storeDir: store, jobId: 'job', epoch: 1n, parentEpoch: null, full: true, createdUnixMs: 1, containers: CONTAINERS, parts: [part], layout: testLayout('job') });
    const got = collector();
    await loadEpoch(store, 'job', 1n, got.sink);
    expectSameImage(got.pages, expectedImage([{ epoch: 1n, pages: order }]), 'epoch 1');
    expect(await verifyEpoch(store, 'job', 1n)).toMatchObject({ ok: true, pagesChecked: 4 });
  });

  it('streams a part larger than the read buffer, with scattered superseded pages', async () => {
    const big = [{ name: 'bank', pageCount: 12_000 }];
    const all = range(0, 12_000).map((p) => ['bank', p] as [string, number]); // 47 MiB > IO_CHUNK_BYTES
    await writeEpoch(store, 'job', 1n, null, { a: all.slice(0, 6_000), b: all.slice(6_000) }, big);
    const changed = all.filter(([, p]) => p % 3 === 0 || (p > 9_000 && p < 9_200)); // gaps of 8 KiB and one long run
    await writeEpoch(store, 'job', 2n, 1n, { a: changed.filter(([, p]) => p % 2 === 0), b: changed.filter(([, p]) => p % 2 === 1) }, big);
    const got = collector();
    const result = await loadEpoch(store, 'job', 2n, got.sink);
    expect(result.pagesLoaded).toBe(12_000);
    expectSameImage(got.pages, expectedImage([{ epoch: 1n, pages: all }, { epoch: 2n, pages: changed }], big), 'epoch 2');
    expect(await verifyEpoch(store, 'job', 2n)).toMatchObject({ ok: true, pagesChecked: 12_000 + changed.length });
  });

  it('matches a naive model on random histories (property)', async () => {
    const pageArb = fc.tuple(fc.constantFrom('bank', 'log'), fc.nat(3));
    const historyArb = fc.array(
      fc.record({ full: fc.boolean(), nodes: fc.array(fc.uniqueArray(pageArb, { selector: ([c, p]) => `${c}#${p}`, maxLength: 5 }), { maxLength: 3 }) }),
      { minLength: 1, maxLength: 5 },
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(historyArb, async (history) => {
        const jobId = `prop-${run++}`;
        const model: Array<{ epoch: bigint; pages: Array<[string, number]>; parent: bigint | null }> = [];
        for (const [i, step] of history.entries()) {
          const epoch = BigInt(i + 1);
          const parent = i === 0 || step.full ? null : epoch - 1n;
          // Pages are owned by one node: a node keeps only pages no earlier node of this epoch took.
          const taken = new Set<string>();
          const parts: Record<string, Array<[string, number]>> = {};
          for (const [n, pages] of step.nodes.entries()) {
            parts[`node-${n}`] = pages.filter(([c, p]) => !taken.has(`${c}#${p}`) && taken.add(`${c}#${p}`)) as Array<[string, number]>;
          }
          await writeEpoch(store, jobId, epoch, parent, parts);
          model.push({ epoch, pages: Object.values(parts).flat(), parent });
        }
        for (const target of model) {
          const chain = [];
          for (let e: bigint | null = target.epoch; e !== null; e = model[Number(e) - 1]!.parent) chain.unshift(model[Number(e) - 1]!);
          const got = collector();
          await loadEpoch(store, jobId, target.epoch, got.sink);
          expectSameImage(got.pages, expectedImage(chain), `${jobId} epoch ${target.epoch}`);
        }
      }),
      { numRuns: 25 },
    );
  });
});

describe('commitEpoch and writeNodePart refuse what would break the chain', () => {
  it('refuses a non-increasing epoch and an uncommitted parent (failed-precondition)', async () => {
    await writeEpoch(store, 'job', 2n, null, { n: [['bank', 0]] });
    const part = await writeNodePart({ storeDir: store, jobId: 'job', epoch: 1n, nodeId: 'n', ...stage(1n, [['bank', 1]]) });
    const base = { storeDir: store, jobId: 'job', createdUnixMs: 1, containers: CONTAINERS, parts: [part], layout: testLayout('job') };
    await expect(commitEpoch({ ...base, epoch: 1n, parentEpoch: null, full: true })).rejects.toSatisfy(
      rejectsWith('failed-precondition', /epoch 1 is not above the latest committed epoch 2/));
    const part2 = await writeNodePart({ storeDir: store, jobId: 'job', epoch: 2n, nodeId: 'n', ...stage(2n, [['bank', 1]]) }).catch((e) => e);
    expect(part2).toSatisfy(rejectsWith('failed-precondition', /already committed/));
    const part4 = await writeNodePart({ storeDir: store, jobId: 'job', epoch: 4n, nodeId: 'n', ...stage(4n, [['bank', 1]]) });
    await expect(commitEpoch({ ...base, parts: [part4], epoch: 4n, parentEpoch: 3n, full: false })).rejects.toSatisfy(
      rejectsWith('failed-precondition', /parent epoch 3 of epoch 4 is not committed/));
    // and the refused epoch did not become committed
    expect((await listCommitted(store, 'job')).map((m) => m.epoch)).toEqual([2n]);
    await commitEpoch({ ...base, parts: [part4], epoch: 4n, parentEpoch: 2n, full: false });
    expect((await listCommitted(store, 'job')).map((m) => m.epoch)).toEqual([2n, 4n]);
  });

  it('finds the latest committed epoch above one being committed past epochs that never committed (invariant 4)', async () => {
    await writeEpoch(store, 'job', 2n, null, { n: [['bank', 0]] });
    await writeEpoch(store, 'job', 6n, null, { n: [['bank', 0]] });
    await writeNodePart({ storeDir: store, jobId: 'job', epoch: 7n, nodeId: 'n', ...stage(7n, [['bank', 1]]) }); // parts, no manifest
    const part4 = await writeNodePart({ storeDir: store, jobId: 'job', epoch: 4n, nodeId: 'n', ...stage(4n, [['bank', 1]]) });
    const base = { storeDir: store, jobId: 'job', createdUnixMs: 1, containers: CONTAINERS, parts: [part4], layout: testLayout('job') };
    await expect(commitEpoch({ ...base, epoch: 4n, parentEpoch: 2n, full: false })).rejects.toSatisfy(
      rejectsWith('failed-precondition', /epoch 4 is not above the latest committed epoch 6/));
    const part8 = await writeNodePart({ storeDir: store, jobId: 'job', epoch: 8n, nodeId: 'n', ...stage(8n, [['bank', 1]]) });
    await expect(commitEpoch({ ...base, parts: [part8], epoch: 8n, parentEpoch: 7n, full: false })).rejects.toSatisfy(
      rejectsWith('failed-precondition', /parent epoch 7 of epoch 8 is not committed/));
    await commitEpoch({ ...base, parts: [part8], epoch: 8n, parentEpoch: 2n, full: false });
    expect((await listCommitted(store, 'job')).map((m) => m.epoch)).toEqual([2n, 6n, 8n]);
  });

  it('checks part files exist with the stated sizes before committing', async () => {
    const part = await writeNodePart({ storeDir: store, jobId: 'job', epoch: 1n, nodeId: 'n', ...stage(1n, [['bank', 1]]) });
    const base = { storeDir: store, jobId: 'job', epoch: 1n, parentEpoch: null, full: true, createdUnixMs: 1, containers: CONTAINERS, layout: testLayout('job') };
    expect(await kindOf(commitEpoch({ ...base, parts: [{ ...part, tableBytes: part.tableBytes + 1 }] }))).toMatchObject({
      kind: 'failed-precondition', message: expect.stringMatching(/n\.table has \d+ bytes, the part says/),
    });
    expect(await kindOf(commitEpoch({ ...base, parts: [{ ...part, nodeId: 'm', dataFile: 'm.pages', tableFile: 'm.table' }] }))).toMatchObject({
      kind: 'failed-precondition', message: expect.stringMatching(/m\.pages does not exist/),
    });
    expect(await listCommitted(store, 'job')).toEqual([]);
  });

  it('rejects bad input as invalid-argument', async () => {
    const ok = stage(1n, [['bank', 0], ['bank', 1]]);
    const input = { storeDir: store, jobId: 'job', epoch: 1n, nodeId: 'n', ...ok };
    const cases: Array<[string, Parameters<typeof writeNodePart>[0], RegExp]> = [
      ['staging larger than the pages', { ...input, staging: new Uint8Array(3 * PAGE_BYTES) }, /need exactly 8192/],
      ['a page twice', { ...input, pages: [ok.pages[0]!, { ...ok.pages[0]!, stagingOffset: PAGE_BYTES }] }, /bank#0 appears twice/],
      ['one slot twice', { ...input, pages: [ok.pages[0]!, { ...ok.pages[1]!, stagingOffset: 0 }] }, /used by another page/],
      ['unaligned offset', { ...input, pages: [ok.pages[0]!, { ...ok.pages[1]!, stagingOffset: 100 }] }, /not a page-aligned offset/],
      ['bad node id', { ...input, nodeId: '../x' }, /bad node id/],
      ['bad job id', { ...input, jobId: 'a/b' }, /bad job id/],
      ['negative epoch', { ...input, epoch: -1n }, /bad epoch/],
    ];
    for (const [what, bad, pattern] of cases) {
      expect(await kindOf(writeNodePart(bad)), what).toMatchObject({ kind: 'invalid-argument', message: expect.stringMatching(pattern) });
    }
    const part = await writeNodePart(input);
    const base = { storeDir: store, jobId: 'job', epoch: 1n, createdUnixMs: 1, containers: CONTAINERS, parts: [part], layout: testLayout('job') };
    expect(await kindOf(commitEpoch({ ...base, parentEpoch: 0n, full: true }))).toMatchObject({ kind: 'invalid-argument', message: expect.stringMatching(/full epoch has no parent/) });
    expect(await kindOf(commitEpoch({ ...base, parentEpoch: null, full: false }))).toMatchObject({ kind: 'invalid-argument', message: expect.stringMatching(/needs a parent/) });
    expect(await kindOf(commitEpoch({ ...base, parentEpoch: null, full: true, layout: undefined as never }))).toMatchObject({ kind: 'invalid-argument' });
  });
});

describe('catalog', () => {
  it('lists jobs, reports a missing epoch as not-found and an uncommitted parent link as data-loss', async () => {
    await writeEpoch(store, 'alpha', 1n, null, { n: [['bank', 0]] });
    await writeEpoch(store, 'beta', 1n, null, { n: [['bank', 0]] });
    await writeEpoch(store, 'beta', 2n, 1n, { n: [['bank', 1]] });
    expect(await listJobs(store)).toEqual(['alpha', 'beta']);
    expect(await listJobs(path.join(store, 'nowhere'))).toEqual([]);
    expect(await listCommitted(store, 'gamma')).toEqual([]);
    expect(await kindOf(epochChain(store, 'beta', 3n))).toMatchObject({ kind: 'not-found' });
    expect(await kindOf(loadEpoch(store, 'beta', 3n, () => {}))).toMatchObject({ kind: 'not-found' });
    const { rm } = await import('node:fs/promises');
    await rm(path.join(epochDir(store, 'beta', 1n), 'MANIFEST.json'));
    expect(await kindOf(epochChain(store, 'beta', 2n))).toMatchObject({ kind: 'data-loss', message: expect.stringMatching(/epoch 2 needs parent epoch 1, which is not committed/) });
    expect(await verifyEpoch(store, 'beta', 2n)).toMatchObject({ ok: false, pagesChecked: 0, errors: [expect.stringMatching(/parent epoch 1/)] });
  });
});
