// Verified bytes (ARCHITECTURE §3.6): a flipped byte, a truncated file, a
// missing or altered table or a broken manifest is detected at restore with an
// error naming the epoch, the absolute file and, when known, container#page —
// and no page of the read that holds a corrupt page is delivered (pages of
// parts read before it may have been: epoch-reader.ts invariant 1; the agent
// drops a job whose restore failed). A broken table, file size or manifest
// loads nothing at all.

import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GridError } from '../../src/common/errors.js';
import { epochDir, listCommitted, loadEpoch, verifyEpoch } from '../../src/store/index.js';
import { READ_BYTES } from '../../src/store/part-stream.js';
import { collector, expectedImage, makeStoreDir, range, writeEpoch } from './helpers.js';
import { expectSameImage } from './expect-image.js';

let store: string;
let cleanup: () => Promise<void>;
let e1: Array<[string, number]>;
let e2: Array<[string, number]>;

beforeEach(async () => {
  ({ dir: store, cleanup } = await makeStoreDir());
  const a1 = range(0, 4).map((p) => ['bank', p] as [string, number]);
  const b1: Array<[string, number]> = [...range(4, 8).map((p) => ['bank', p] as [string, number]), ['log', 0]];
  e1 = [...a1, ...b1];
  e2 = [['bank', 1], ['bank', 2]];
  await writeEpoch(store, 'job', 1n, null, { 'node-a': a1, 'node-b': b1 });
  await writeEpoch(store, 'job', 2n, 1n, { 'node-a': e2 });
});
afterEach(async () => cleanup());

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const file = (epoch: bigint, name: string): string => path.join(epochDir(store, 'job', epoch), name);

async function flipByte(target: string, at: number): Promise<void> {
  const bytes = await readFile(target);
  bytes[at] = bytes[at]! ^ 0x40;
  await writeFile(target, bytes);
}

/** loadEpoch must fail with data-loss having delivered exactly `before` (container#page); returns the message. */
async function loadFails(epoch: bigint, storeDir = store, before: string[] = []): Promise<string> {
  const delivered: string[] = [];
  try {
    await loadEpoch(storeDir, 'job', epoch, (c, p) => void delivered.push(`${c}#${p}`));
  } catch (err) {
    expect(delivered.sort()).toEqual([...before].sort());
    expect(err).toBeInstanceOf(GridError);
    expect((err as GridError).kind).toBe('data-loss');
    return (err as GridError).message;
  }
  throw new Error(`epoch ${epoch} loaded ${delivered.length} pages`);
}

describe('corruption is detected at restore', () => {
  it('a flipped byte in a .pages file: load names epoch, file and container#page, delivers nothing; verify lists it', async () => {
    const pages = file(2n, 'node-a.pages');
    await flipByte(pages, 4096 + 100); // second slot: bank#2
    const message = await loadFails(2n, path.relative(process.cwd(), store)); // a relative store dir still yields absolute names
    expect(message).toMatch(new RegExp(`^epoch 2: ${escape(pages)} page bank#2 \\(offset 4096\\): crc32c mismatch, expected 0x[0-9a-f]{8}, got 0x[0-9a-f]{8}$`));
    const verified = await verifyEpoch(store, 'job', 2n);
    expect(verified).toEqual({ ok: false, epoch: 2n, pagesChecked: e1.length + e2.length, errors: [message] });
    // The parent is untouched and still restorable.
    const got = collector();
    await loadEpoch(store, 'job', 1n, got.sink);
    expectSameImage(got.pages, expectedImage([{ epoch: 1n, pages: e1 }]), 'epoch 1');
  });

  it('a corrupt page in the last part read fails the load before any page of its read is delivered', async () => {
    const pages = file(1n, 'node-b.pages');
    await flipByte(pages, 4 * 4096 + 1); // log#0, the last page of the last part of the chain
    // The parts read before it (epoch 2's, then epoch 1's node-a) were delivered; none of node-b's, read in one go.
    const message = await loadFails(2n, store, ['bank#0', 'bank#1', 'bank#2', 'bank#3']);
    expect(message).toMatch(new RegExp(`^epoch 1: ${escape(pages)} page log#0 \\(offset 16384\\): crc32c mismatch`));
  });

  it('a part larger than one read: a corrupt byte fails the load before any page of its read is delivered', async () => {
    const perRead = READ_BYTES / 4096;
    const pageCount = perRead + 300; // two reads: [0, perRead) and the rest
    const big: Array<[string, number]> = range(0, pageCount).map((p) => ['big', p]);
    await writeEpoch(store, 'big-job', 1n, null, { 'node-a': big }, [{ name: 'big', pageCount }]);
    const pages = path.join(epochDir(store, 'big-job', 1n), 'node-a.pages');
    const corrupt = perRead + 150;
    await flipByte(pages, corrupt * 4096 + 4000);
    const delivered: number[] = [];
    const err = await loadEpoch(store, 'big-job', 1n, (_c, p) => void delivered.push(p)).catch((e: unknown) => e);
    expect((err as GridError).message).toMatch(new RegExp(`^epoch 1: ${escape(pages)} page big#${corrupt} \\(offset ${corrupt * 4096}\\): crc32c mismatch`));
    // The first read passed and was delivered whole; nothing of the second, not even the pages before the corrupt one.
    expect(delivered).toEqual(range(0, perRead));
    // Corrupt in the first read instead: nothing at all is delivered.
    await flipByte(pages, corrupt * 4096 + 4000);
    await flipByte(pages, 10 * 4096);
    const none: number[] = [];
    await expect(loadEpoch(store, 'big-job', 1n, (_c, p) => void none.push(p))).rejects.toThrow(/page big#10 \(offset 40960\): crc32c mismatch/);
    expect(none).toEqual([]);
    expect((await verifyEpoch(store, 'big-job', 1n)).errors).toEqual([expect.stringMatching(/page big#10 /)]);
  });

  it('a corrupt page that a newer epoch supersedes does not stop the load, but verify reports it', async () => {
    await flipByte(file(1n, 'node-a.pages'), 4096 + 7); // bank#1 of epoch 1, superseded by epoch 2
    const got = collector();
    await loadEpoch(store, 'job', 2n, got.sink);
    expectSameImage(got.pages, expectedImage([{ epoch: 1n, pages: e1 }, { epoch: 2n, pages: e2 }]), 'epoch 2');
    const verified = await verifyEpoch(store, 'job', 2n);
    expect(verified.ok).toBe(false);
    expect(verified.errors).toEqual([expect.stringMatching(/^epoch 1: .*\/node-a\.pages page bank#1 \(offset 4096\): crc32c mismatch/)]);
    expect(await loadFails(1n)).toMatch(/node-a\.pages page bank#1/);
  });

  it('a truncated .pages file names the first page cut off', async () => {
    const pages = file(1n, 'node-b.pages');
    await truncate(pages, 4 * 4096 + 10);
    const message = await loadFails(2n);
    expect(message).toBe(`epoch 1: ${pages} page log#0 (offset 16384): cut off, data file has 16394 bytes, manifest says 20480`);
    const verified = await verifyEpoch(store, 'job', 2n);
    expect(verified.ok).toBe(false);
    expect(verified.errors).toEqual([message]);
    expect(verified.pagesChecked).toBe(e1.length + e2.length - 1);
  });

  it('a missing table, an altered table and a missing data file are named', async () => {
    await rm(file(2n, 'node-a.table'));
    expect(await loadFails(2n)).toBe(`epoch 2: ${file(2n, 'node-a.table')}: page table is missing`);
    await flipByte(file(1n, 'node-b.table'), 40);
    await rm(file(1n, 'node-a.pages'));
    const verified = await verifyEpoch(store, 'job', 2n);
    expect(verified.ok).toBe(false);
    expect(verified.errors).toEqual([
      `epoch 2: ${file(2n, 'node-a.table')}: page table is missing`,
      `epoch 1: ${file(1n, 'node-a.pages')}: data file is missing`,
      expect.stringMatching(new RegExp(`^epoch 1: ${file(1n, 'node-b.table')}: page table sha256 [0-9a-f]{64}, manifest says [0-9a-f]{64}$`)),
    ]);
    expect(verified.pagesChecked).toBe(0);
  });

  it('a tampered manifest makes the epoch not committed: not listed, and its chain reports the broken link', async () => {
    const manifest = file(1n, 'MANIFEST.json');
    await writeFile(manifest, (await readFile(manifest, 'utf8')).replace('"pageCount": 8', '"pageCount": 9'));
    expect((await listCommitted(store, 'job')).map((m) => m.epoch)).toEqual([2n]);
    expect(await loadFails(2n)).toMatch(new RegExp(`^epoch 1 \\(parent of epoch 2\\): ${escape(manifest)}: invalid manifest: digest mismatch`));
    expect(await loadFails(1n)).toMatch(/^epoch 1: .*invalid manifest: digest mismatch/);
    await writeFile(manifest, '{ half a manif');
    expect((await verifyEpoch(store, 'job', 2n)).errors).toEqual([expect.stringMatching(/invalid manifest: not JSON/)]);
  });
});
