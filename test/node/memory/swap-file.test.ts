import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PAGE_BYTES, PageMemory } from '../../../src/node/memory/page-memory.js';
import { SwapFile } from '../../../src/node/memory/swap-file.js';

// The real swap port on a file in a temporary directory, alone and under
// PageMemory with a budget small enough that most pages live in the file.

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gridckpt-swap-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Byte equality without vitest's element-by-element diffing (slow on 4 KiB arrays). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function page(value: number): Uint8Array {
  return Uint8Array.from({ length: PAGE_BYTES }, (_, i) => (value + i) & 255);
}

describe('SwapFile', () => {
  it('writes and reads pages at slot * PAGE_BYTES, in any order', () => {
    const swap = new SwapFile(join(dir, 'swap'));
    swap.write(3, page(3));
    swap.write(0, page(0));
    swap.write(3, page(33)); // overwrite
    const into = new Uint8Array(PAGE_BYTES);
    swap.read(3, into);
    expect(into).toEqual(page(33));
    swap.read(0, into);
    expect(into).toEqual(page(0));
    expect(statSync(join(dir, 'swap')).size).toBe(4 * PAGE_BYTES);
    // A slot inside the file that was never written reads as zeros (a hole).
    swap.read(1, into);
    expect(into).toEqual(new Uint8Array(PAGE_BYTES));
    swap.close();
    swap.close(); // idempotent
    expect(() => swap.read(0, into)).toThrow(/used after close/);
  });

  it('reads into a slice of a larger buffer (how snapshot fills staging)', () => {
    const swap = new SwapFile(join(dir, 'swap'));
    swap.write(1, page(7));
    const staging = new Uint8Array(3 * PAGE_BYTES);
    swap.read(1, staging.subarray(PAGE_BYTES, 2 * PAGE_BYTES));
    expect(staging.subarray(PAGE_BYTES, 2 * PAGE_BYTES)).toEqual(page(7));
    expect(staging.subarray(0, PAGE_BYTES).every((b) => b === 0)).toBe(true);
    swap.close();
  });

  it('truncates an old swap file at open, and reports a read past its end', () => {
    const path = join(dir, 'swap');
    writeFileSync(path, new Uint8Array(8 * PAGE_BYTES).fill(1));
    const swap = new SwapFile(path);
    expect(statSync(path).size).toBe(0);
    expect(() => swap.read(0, new Uint8Array(PAGE_BYTES))).toThrow(`swap file ${path}: short read at slot 0 (0 of 4096 bytes)`);
    swap.close();
  });

  it('rejects bad slots and buffers (caller bugs)', () => {
    const swap = new SwapFile(join(dir, 'swap'));
    expect(() => swap.write(-1, page(0))).toThrow('swap write: bad slot -1');
    expect(() => swap.write(0, new Uint8Array(10))).toThrow('swap write: slot 0 needs a 4096-byte buffer');
    swap.close();
  });

  it('fails to open in a missing directory with the OS error', () => {
    expect(() => new SwapFile(join(dir, 'missing', 'swap'))).toThrow(/ENOENT/);
  });

  it('backs PageMemory: 200 pages through 16 frames, snapshot and read back', () => {
    const swap = new SwapFile(join(dir, 'swap'));
    const mem = new PageMemory({
      nodeId: 'n1', budgetBytes: 16 * PAGE_BYTES, maxContainersPerJob: 4, maxPagesPerContainer: 1024,
      maxBatchWrites: 16, maxBatchBytes: 1 << 20,
    }, swap);
    mem.createContainer('job', 'c', 200);
    for (let p = 0; p < 200; p += 1) {
      mem.applyBatch('job', [{ container: 'c', page: p, offset: 0, op: { kind: 'data', data: page(p) } }]);
    }
    mem.applyBatch('job', [{ container: 'c', page: 5, offset: 16, op: { kind: 'add-i64', delta: 1000n } }]);
    mem.checkInvariants();
    expect(mem.stats()).toMatchObject({ framesUsed: 16, pagesSwapped: 184, swapOuts: 185, swapIns: 1 });

    const snap = mem.snapshot('job', 'changed');
    expect(snap.entries.length).toBe(200);
    expect(snap.pagesSwappedIn).toBe(184);
    for (let p = 0; p < 200; p += 1) {
      const want = page(p);
      if (p === 5) new DataView(want.buffer).setBigInt64(16, new DataView(want.buffer).getBigInt64(16, true) + 1000n, true);
      expect(same(snap.staging.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES), want), `page ${p}`).toBe(true);
    }
    const back = mem.readPages('job', 'c', 100, 3);
    expect(same(back.subarray(PAGE_BYTES, 2 * PAGE_BYTES), page(101))).toBe(true);
    mem.dropJob('job');
    mem.checkInvariants();
    swap.close();
  });
});
