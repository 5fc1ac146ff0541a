import { describe, expect, it } from 'vitest';
import { GridError } from '../../../src/common/errors.js';
import { FRAMES_PER_CHUNK, PAGE_BYTES, PageMemory, type PageMemoryConfig, type PageWriteOp } from '../../../src/node/memory/page-memory.js';
import { MemorySwap } from '../../../src/node/memory/swap-memory.js';

// Exact-output unit tests of PageMemory. Invariant numbers refer to the
// comment at the top of src/node/memory/page-memory.ts.

const CONFIG: PageMemoryConfig = {
  nodeId: 'node-a',
  budgetBytes: 16 * PAGE_BYTES,
  maxContainersPerJob: 3,
  maxPagesPerContainer: 64,
  maxBatchWrites: 8,
  maxBatchBytes: 2 * PAGE_BYTES,
};

function setup(overrides: Partial<PageMemoryConfig> = {}): { mem: PageMemory; swap: MemorySwap } {
  const swap = new MemorySwap();
  return { mem: new PageMemory({ ...CONFIG, ...overrides }, swap), swap };
}

function data(page: number, offset: number, bytes: number[], container = 'bank'): PageWriteOp {
  return { container, page, offset, op: { kind: 'data', data: Uint8Array.from(bytes) } };
}

function add(page: number, offset: number, delta: bigint, container = 'bank'): PageWriteOp {
  return { container, page, offset, op: { kind: 'add-i64', delta } };
}

/** Fills a whole page with one byte value, so contents are easy to recognise. */
function fillPage(mem: PageMemory, job: string, container: string, page: number, value: number): void {
  mem.applyBatch(job, [{ container, page, offset: 0, op: { kind: 'data', data: new Uint8Array(PAGE_BYTES).fill(value) } }]);
}

function catchError(fn: () => unknown): GridError {
  try {
    fn();
  } catch (e) {
    if (e instanceof GridError) return e;
    throw e;
  }
  throw new Error('expected a GridError');
}

function expectGridError(fn: () => unknown, kind: string, message: string): void {
  const e = catchError(fn);
  expect({ kind: e.kind, message: e.message }).toEqual({ kind, message });
}

describe('PageMemory config', () => {
  it('rejects a budget under 16 frames, naming the numbers', () => {
    expect(() => setup({ budgetBytes: 16 * PAGE_BYTES - 1 })).toThrow(
      'memory budget of 65535 bytes holds 15 frames of 4096 bytes; at least 16 (65536 bytes) are needed',
    );
    expect(setup({ budgetBytes: 16 * PAGE_BYTES + 100 }).mem.stats().framesTotal).toBe(16);
  });

  it('rejects a bad node id and non-integer limits', () => {
    expect(() => setup({ nodeId: '../x' })).toThrow(/bad node id "\.\.\/x"/);
    expect(() => setup({ maxBatchWrites: 0 })).toThrow('bad page memory maxBatchWrites 0: expected an integer from 1 to 9007199254740991');
    expect(() => setup({ budgetBytes: 1.5e6 + 0.5 })).toThrow(/bad page memory budgetBytes/);
  });

  it('allocates a multi-chunk slab for a budget above 64 MiB', () => {
    const { mem } = setup({ budgetBytes: 65 * 1024 * 1024 + 5 * PAGE_BYTES, maxPagesPerContainer: 1 << 20 });
    expect(mem.stats().framesTotal).toBe(16384 + 256 + 5);
    mem.createContainer('big', 'c', 16384 + 300);
    // Pages 16383 and 16384 sit in different chunks; a snapshot spans both.
    fillPage(mem, 'big', 'c', 16383, 1);
    fillPage(mem, 'big', 'c', 16384, 2);
    const snap = mem.snapshot('big', 'full');
    expect(snap.staging[16383 * PAGE_BYTES]).toBe(1);
    expect(snap.staging[16384 * PAGE_BYTES]).toBe(2);
    mem.checkInvariants();
  });
});

describe('containers', () => {
  it('creates zero, unmaterialized pages that count as changed', () => {
    const { mem } = setup();
    expect(mem.createContainer('bank', 'accounts', 8)).toEqual({ jobId: 'bank', name: 'accounts', pageCount: 8, pagesChanged: 8 });
    expect(mem.pageInfo('bank', 'accounts', 7)).toEqual({
      owner: 'node-a', state: 'exclusive', version: 0n, changed: true, where: 'zero',
    });
    expect(mem.stats()).toEqual({
      budgetBytes: 16 * PAGE_BYTES, framesTotal: 16, framesUsed: 0, framesLent: 0, pagesTotal: 8,
      pagesResident: 0, pagesSwapped: 0, swapOuts: 0, swapIns: 0,
    });
    expect(mem.jobs()).toEqual(['bank']);
    expect(mem.hasContainer('bank', 'accounts')).toBe(true);
    expect(mem.hasContainer('bank', 'other')).toBe(false);
    mem.checkInvariants();
  });

  it('rejects duplicates, bad names, bad page counts and too many containers', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'a', 1);
    expectGridError(() => mem.createContainer('bank', 'a', 1), 'already-exists', 'container "a" of job "bank" already exists');
    expect(catchError(() => mem.createContainer('bank', 'a/b', 1)).message).toMatch(/^bad container "a\/b"/);
    expect(catchError(() => mem.createContainer('', 'a', 1)).message).toMatch(/^bad job ""/);
    expectGridError(() => mem.createContainer('bank', 'z', 0), 'invalid-argument', 'bad page count 0 for container "z": expected 1 to 64');
    expectGridError(() => mem.createContainer('bank', 'z', 65), 'invalid-argument', 'bad page count 65 for container "z": expected 1 to 64');
    expectGridError(() => mem.createContainer('bank', 'z', 2.5), 'invalid-argument', 'bad page count 2.5 for container "z": expected 1 to 64');
    mem.createContainer('bank', 'b', 1);
    mem.createContainer('bank', 'c', 1);
    expectGridError(() => mem.createContainer('bank', 'd', 1), 'resource-exhausted',
      'job "bank" already has 3 containers (maxContainersPerJob 3)');
    mem.createContainer('other', 'd', 1); // the bound is per job
    expect(mem.containers('bank').map((c) => c.name)).toEqual(['a', 'b', 'c']);
    expect(mem.stats().pagesTotal).toBe(4);
    mem.checkInvariants();
  });

  it('opens an existing container and checks an expected page count', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'accounts', 8);
    expect(mem.openContainer('bank', 'accounts')).toEqual({ jobId: 'bank', name: 'accounts', pageCount: 8, pagesChanged: 8 });
    expect(mem.openContainer('bank', 'accounts', 0).pageCount).toBe(8);
    expect(mem.openContainer('bank', 'accounts', 8).pageCount).toBe(8);
    expectGridError(() => mem.openContainer('bank', 'accounts', 9), 'invalid-argument', 'container "accounts" of job "bank" has 8 pages, not 9');
    expectGridError(() => mem.openContainer('bank', 'x'), 'not-found', 'unknown container "x" of job "bank"');
    expectGridError(() => mem.openContainer('nojob', 'accounts'), 'not-found', 'unknown container "accounts" of job "nojob"');
    expect(mem.containers('nojob')).toEqual([]);
  });
});

describe('reads and writes', () => {
  it('reads a zero page as zeros without taking a frame', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'bank', 8);
    expect(mem.read('bank', 'bank', 3, 10, 4)).toEqual({ data: new Uint8Array(4), version: 0n });
    expect(mem.readPages('bank', 'bank', 0, 2)).toEqual(new Uint8Array(2 * PAGE_BYTES));
    expect(mem.stats().framesUsed).toBe(0);
    expect(mem.pageInfo('bank', 'bank', 3).where).toBe('zero');
  });

  it('applies a data write: resident, version+1, changed, modified, owned by this node', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'bank', 8);
    mem.snapshot('bank', 'changed'); // clear the creation flags
    mem.applyBatch('bank', [data(2, 100, [1, 2, 3])]);
    expect(mem.read('bank', 'bank', 2, 99, 5)).toEqual({ data: Uint8Array.from([0, 1, 2, 3, 0]), version: 1n });
    expect(mem.pageInfo('bank', 'bank', 2)).toEqual({ owner: 'node-a', state: 'modified', version: 1n, changed: true, where: 'resident' });
    expect(mem.openContainer('bank', 'bank').pagesChanged).toBe(1);
    mem.checkInvariants();
  });

  it('returns copies: mutating a read result or a written buffer changes nothing', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'bank', 1);
    const src = Uint8Array.from([5, 6]);
    mem.applyBatch('bank', [{ container: 'bank', page: 0, offset: 0, op: { kind: 'data', data: src } }]);
    src[0] = 99;
    const got = mem.read('bank', 'bank', 0, 0, 2).data;
    got[1] = 77;
    expect(mem.read('bank', 'bank', 0, 0, 2).data).toEqual(Uint8Array.from([5, 6]));
    mem.readPages('bank', 'bank', 0, 1).fill(1);
    expect(mem.read('bank', 'bank', 0, 0, 2).data).toEqual(Uint8Array.from([5, 6]));
  });

  it('adds to a signed little-endian i64, wrapping at 64 bits', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'bank', 1);
    const i64 = (): bigint => new DataView(mem.read('bank', 'bank', 0, 8, 8).data.buffer).getBigInt64(0, true);
    mem.applyBatch('bank', [add(0, 8, 5n), add(0, 8, -12n)]);
    expect(i64()).toBe(-7n);
    expect(mem.read('bank', 'bank', 0, 8, 8).data).toEqual(Uint8Array.from([0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
    mem.applyBatch('bank', [add(0, 8, 2n ** 63n + 6n)]); // -7 + 2^63 + 6 = 2^63 - 1
    expect(i64()).toBe(2n ** 63n - 1n);
    mem.applyBatch('bank', [add(0, 8, 1n)]);
    expect(i64()).toBe(-(2n ** 63n));
    // An unaligned i64 at the very end of the page is fine.
    mem.applyBatch('bank', [add(0, 4088, 258n)]);
    expect(mem.read('bank', 'bank', 0, 4088, 8).data).toEqual(Uint8Array.from([2, 1, 0, 0, 0, 0, 0, 0]));
    expect(mem.pageInfo('bank', 'bank', 0).version).toBe(5n); // one per write, batches included
  });

  it('rejects bad reads with messages naming the value', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'bank', 8);
    expectGridError(() => mem.read('bank', 'bank', 12, 0, 1), 'invalid-argument', 'page 12 out of range for container "bank" (8 pages)');
    expectGridError(() => mem.read('bank', 'bank', 0, 4000, 200), 'invalid-argument', 'range 4000+200 runs past the 4096-byte page');
    expectGridError(() => mem.read('bank', 'x', 0, 0, 1), 'not-found', 'unknown container "x" of job "bank"');
    expectGridError(() => mem.read('bank', 'bank', -1, 0, 1), 'invalid-argument', 'bad page -1: expected a non-negative integer');
    expectGridError(() => mem.read('bank', 'bank', 0, 1.5, 1), 'invalid-argument', 'bad offset 1.5: expected a non-negative integer');
    expectGridError(() => mem.read('bank', 'bank', 0, 0, Number.NaN), 'invalid-argument', 'bad length NaN: expected a non-negative integer');
    expectGridError(() => mem.read('bank', 'bank', 2 ** 53, 0, 1), 'invalid-argument', 'bad page 9007199254740992: expected a non-negative integer');
    expectGridError(() => mem.readPages('bank', 'bank', 6, 4), 'invalid-argument', 'pages 6+4 run past container "bank" (8 pages)');
    expect(mem.read('bank', 'bank', 0, 4096, 0).data.length).toBe(0);
  });

  it('rejects bad batches and changes nothing (validation is atomic)', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'bank', 8);
    const good = data(0, 0, [1]);
    expectGridError(() => mem.applyBatch('bank', [data(12, 0, [1])]), 'invalid-argument', 'page 12 out of range for container "bank" (8 pages)');
    expectGridError(() => mem.applyBatch('bank', [good, data(1, 4000, new Array<number>(200).fill(1))]), 'invalid-argument',
      'write 1 of 2: range 4000+200 runs past the 4096-byte page');
    expectGridError(() => mem.applyBatch('bank', [good, add(1, 4092, 1n)]), 'invalid-argument', 'write 1 of 2: add-i64 at offset 4092 needs 8 bytes');
    expectGridError(() => mem.applyBatch('bank', [good, data(0, 0, [1], 'x')]), 'not-found', 'write 1 of 2: unknown container "x" of job "bank"');
    expectGridError(() => mem.applyBatch('bank', new Array<PageWriteOp>(9).fill(good)), 'invalid-argument', 'batch of 9 writes exceeds maxBatchWrites 8');
    const big = { container: 'bank', page: 0, offset: 0, op: { kind: 'data' as const, data: new Uint8Array(PAGE_BYTES) } };
    expectGridError(() => mem.applyBatch('bank', [big, big, good]), 'invalid-argument', 'batch of 8193 bytes exceeds maxBatchBytes 8192');
    const bogus = { container: 'bank', page: 0, offset: 0, op: { kind: 'xor' } } as unknown as PageWriteOp;
    expectGridError(() => mem.applyBatch('bank', [bogus]), 'invalid-argument', 'unknown write kind "xor"');
    const noDelta = { container: 'bank', page: 0, offset: 0, op: { kind: 'add-i64', delta: 1 } } as unknown as PageWriteOp;
    expectGridError(() => mem.applyBatch('bank', [noDelta]), 'invalid-argument', 'add-i64 needs a bigint delta, got 1');
    expect(mem.pageInfo('bank', 'bank', 0)).toEqual({ owner: 'node-a', state: 'exclusive', version: 0n, changed: true, where: 'zero' });
    expect(mem.stats().framesUsed).toBe(0);
    mem.applyBatch('bank', []); // an empty batch is a no-op
    mem.checkInvariants();
  });

  it('rejects a batch touching more distinct pages than the budget has frames', () => {
    const { mem } = setup({ maxBatchWrites: 32 });
    mem.createContainer('bank', 'bank', 20);
    const writes = Array.from({ length: 17 }, (_, p) => data(p, 0, [1]));
    expectGridError(() => mem.applyBatch('bank', writes), 'resource-exhausted',
      'batch touches 17 distinct pages but the memory budget holds only 16 frames');
    mem.applyBatch('bank', writes.slice(0, 16)); // exactly the budget works
    expect(mem.stats().framesUsed).toBe(16);
    mem.checkInvariants();
  });
});

describe('swap', () => {
  it('evicts the least recently used page when frames run out, and swaps it back on access', () => {
    const { mem, swap } = setup();
    mem.createContainer('bank', 'bank', 20);
    for (let p = 0; p < 16; p += 1) fillPage(mem, 'bank', 'bank', p, p + 1);
    mem.read('bank', 'bank', 0, 0, 1); // page 0 becomes the most recent; page 1 is now the oldest
    fillPage(mem, 'bank', 'bank', 16, 17);
    expect(mem.pageInfo('bank', 'bank', 1).where).toBe('swapped');
    expect(mem.pageInfo('bank', 'bank', 0).where).toBe('resident');
    expect(mem.stats()).toMatchObject({ framesUsed: 16, pagesResident: 16, pagesSwapped: 1, swapOuts: 1, swapIns: 0 });
    // Reading page 1 swaps it in (evicting page 2, the oldest now) and frees its slot.
    expect(mem.read('bank', 'bank', 1, 4095, 1)).toEqual({ data: Uint8Array.from([2]), version: 1n });
    expect(mem.pageInfo('bank', 'bank', 2).where).toBe('swapped');
    expect(mem.stats()).toMatchObject({ pagesSwapped: 1, swapOuts: 2, swapIns: 1 });
    // Page 2 went to a new slot 1 (the frame is taken before page 1's slot 0 is
    // freed); slot 0 is free now, so the next eviction reuses it.
    expect(swap.slotCount()).toBe(2);
    fillPage(mem, 'bank', 'bank', 17, 18);
    expect(mem.stats()).toMatchObject({ pagesSwapped: 2, swapOuts: 3 });
    expect(swap.slotCount()).toBe(2);
    mem.checkInvariants();
  });

  it('readPages swaps pages in one by one and returns them all', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'bank', 40);
    for (let p = 0; p < 40; p += 2) fillPage(mem, 'bank', 'bank', p, p + 1);
    const all = mem.readPages('bank', 'bank', 0, 40);
    for (let p = 0; p < 40; p += 1) {
      expect(all[p * PAGE_BYTES]).toBe(p % 2 === 0 ? p + 1 : 0);
      expect(all[p * PAGE_BYTES + PAGE_BYTES - 1]).toBe(p % 2 === 0 ? p + 1 : 0);
    }
    mem.checkInvariants();
  });

  it('dropJob frees frames and swap slots, and freed slots are reused', () => {
    const { mem, swap } = setup();
    mem.createContainer('a', 'c', 20);
    for (let p = 0; p < 20; p += 1) fillPage(mem, 'a', 'c', p, 1);
    expect(mem.stats()).toMatchObject({ framesUsed: 16, pagesSwapped: 4 });
    mem.dropJob('a');
    mem.dropJob('a'); // idempotent
    expect(mem.stats()).toMatchObject({ framesUsed: 0, pagesSwapped: 0, pagesTotal: 0 });
    expect(mem.jobs()).toEqual([]);
    mem.checkInvariants();
    mem.createContainer('b', 'c', 20);
    for (let p = 0; p < 20; p += 1) fillPage(mem, 'b', 'c', p, 2);
    expect(swap.slotCount()).toBe(4); // the same four slots, not four new ones
    expect(mem.read('b', 'c', 0, 0, 1).data).toEqual(Uint8Array.from([2]));
    mem.checkInvariants();
  });

  it('survives a failed eviction write: nothing changes, the next attempt works (invariant 6)', () => {
    const { mem, swap } = setup();
    mem.createContainer('bank', 'bank', 20);
    for (let p = 0; p < 16; p += 1) fillPage(mem, 'bank', 'bank', p, p + 1);
    swap.failNextWrite();
    expect(() => fillPage(mem, 'bank', 'bank', 16, 99)).toThrow('injected swap write failure at slot 0');
    mem.checkInvariants();
    expect(mem.pageInfo('bank', 'bank', 16)).toMatchObject({ version: 0n, where: 'zero' });
    expect(mem.pageInfo('bank', 'bank', 0)).toMatchObject({ version: 1n, where: 'resident' });
    expect(mem.stats()).toMatchObject({ framesUsed: 16, pagesSwapped: 0, swapOuts: 0 });
    fillPage(mem, 'bank', 'bank', 16, 99);
    expect(mem.pageInfo('bank', 'bank', 0).where).toBe('swapped');
    expect(mem.read('bank', 'bank', 0, 0, 1).data).toEqual(Uint8Array.from([1]));
    mem.checkInvariants();
  });

  it('survives a failed swap-in read: the page stays swapped with its content', () => {
    const { mem, swap } = setup();
    mem.createContainer('bank', 'bank', 20);
    for (let p = 0; p < 17; p += 1) fillPage(mem, 'bank', 'bank', p, p + 1);
    swap.failNextRead();
    expect(() => mem.read('bank', 'bank', 0, 0, 1)).toThrow('injected swap read failure at slot 0');
    mem.checkInvariants();
    expect(mem.pageInfo('bank', 'bank', 0).where).toBe('swapped');
    // The eviction that made room for it did happen; page 1 is now swapped too, consistently.
    expect(mem.stats()).toMatchObject({ framesUsed: 15, pagesSwapped: 2 });
    expect(mem.read('bank', 'bank', 0, 0, 1).data).toEqual(Uint8Array.from([1]));
    expect(mem.read('bank', 'bank', 1, 0, 1).data).toEqual(Uint8Array.from([2]));
    mem.checkInvariants();
  });

  it('a batch whose swap I/O fails applies no write at all', () => {
    const { mem, swap } = setup();
    mem.createContainer('bank', 'bank', 20);
    for (let p = 0; p < 16; p += 1) fillPage(mem, 'bank', 'bank', p, 1);
    const before = [0, 1, 16, 17].map((p) => mem.pageInfo('bank', 'bank', p).version);
    // Page 0 is resident; page 16 needs an eviction, whose swap write fails.
    swap.failNextWrite();
    expect(() => mem.applyBatch('bank', [data(0, 0, [7]), data(16, 0, [7]), data(17, 0, [7])])).toThrow(/injected swap write/);
    expect([0, 1, 16, 17].map((p) => mem.pageInfo('bank', 'bank', p).version)).toEqual(before);
    expect(mem.read('bank', 'bank', 0, 0, 1).data).toEqual(Uint8Array.from([1]));
    mem.checkInvariants();
  });
});

describe('snapshot', () => {
  it('copies into a reusable staging buffer when it is large enough, else allocates', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'a', 2);
    fillPage(mem, 'bank', 'a', 1, 0x5a);
    expect(mem.snapshotBytes('bank', 'changed')).toBe(2 * PAGE_BYTES);
    expect(mem.snapshotBytes('bank', 'full')).toBe(2 * PAGE_BYTES);
    const reuse = new Uint8Array(3 * PAGE_BYTES).fill(0xee); // stale bytes must not leak into zero pages
    const s1 = mem.snapshot('bank', 'changed', reuse);
    expect(s1.staging.buffer).toBe(reuse.buffer);
    expect(s1.staging.length).toBe(2 * PAGE_BYTES);
    expect(s1.staging.subarray(0, PAGE_BYTES).every((b) => b === 0)).toBe(true);
    expect(s1.staging.subarray(PAGE_BYTES).every((b) => b === 0x5a)).toBe(true);
    expect(mem.snapshotBytes('bank', 'changed')).toBe(0);
    const small = new Uint8Array(PAGE_BYTES);
    const s2 = mem.snapshot('bank', 'full', small);
    expect(s2.staging.buffer).not.toBe(small.buffer);
    expect(s2.staging.length).toBe(2 * PAGE_BYTES);
  });

  it('copies changed pages in container then page order and clears their flags', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'a', 3);
    mem.createContainer('bank', 'b', 2);
    mem.createContainer('other', 'a', 1);
    fillPage(mem, 'bank', 'b', 1, 0xbb);
    fillPage(mem, 'bank', 'a', 2, 0xaa);
    const first = mem.snapshot('bank', 'changed');
    expect(first.entries).toEqual([
      { container: 'a', page: 0, version: 0n, stagingOffset: 0 },
      { container: 'a', page: 1, version: 0n, stagingOffset: 4096 },
      { container: 'a', page: 2, version: 1n, stagingOffset: 8192 },
      { container: 'b', page: 0, version: 0n, stagingOffset: 12288 },
      { container: 'b', page: 1, version: 1n, stagingOffset: 16384 },
    ]);
    expect(first.staging.length).toBe(5 * PAGE_BYTES);
    expect(first.pagesSwappedIn).toBe(0);
    expect(first.staging.subarray(0, 8192).every((b) => b === 0)).toBe(true);
    expect(first.staging.subarray(8192, 12288).every((b) => b === 0xaa)).toBe(true);
    expect(first.staging.subarray(16384).every((b) => b === 0xbb)).toBe(true);
    expect(mem.containers('bank').map((c) => c.pagesChanged)).toEqual([0, 0]);
    expect(mem.pageInfo('bank', 'a', 2)).toEqual({ owner: 'node-a', state: 'modified', version: 1n, changed: false, where: 'resident' });
    expect(mem.containers('other')[0]!.pagesChanged).toBe(1); // other jobs untouched

    expect(mem.snapshot('bank', 'changed')).toEqual({ staging: new Uint8Array(0), entries: [], pagesSwappedIn: 0, pageCount: 0 });
    mem.applyBatch('bank', [add(1, 0, 3n, 'b')]);
    const second = mem.snapshot('bank', 'changed');
    expect(second.entries).toEqual([{ container: 'b', page: 1, version: 2n, stagingOffset: 0 }]);
    expect(second.staging[0]).toBe(0xbe);
    mem.checkInvariants();
  });

  it('full mode copies every page of the job and clears every flag', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'a', 2);
    mem.createContainer('bank', 'b', 1);
    mem.snapshot('bank', 'changed');
    fillPage(mem, 'bank', 'b', 0, 3);
    const full = mem.snapshot('bank', 'full');
    expect(full.entries.map((e) => `${e.container}:${e.page}@${e.stagingOffset}`)).toEqual(['a:0@0', 'a:1@4096', 'b:0@8192']);
    expect(full.staging[8192]).toBe(3);
    expect(mem.containers('bank').map((c) => c.pagesChanged)).toEqual([0, 0]);
  });

  it('reads swapped pages straight from swap without swapping them in or touching the LRU (invariant 7)', () => {
    const { mem, swap } = setup();
    mem.createContainer('bank', 'bank', 20);
    for (let p = 0; p < 20; p += 1) fillPage(mem, 'bank', 'bank', p, p + 1);
    const statsBefore = mem.stats();
    const snap = mem.snapshot('bank', 'changed');
    expect(snap.pagesSwappedIn).toBe(4);
    expect(snap.entries.length).toBe(20);
    for (let p = 0; p < 20; p += 1) {
      expect(snap.staging[p * PAGE_BYTES]).toBe(p + 1);
      expect(snap.staging[p * PAGE_BYTES + PAGE_BYTES - 1]).toBe(p + 1);
    }
    expect(mem.stats()).toEqual(statsBefore);
    expect(swap.reads).toBe(4);
    for (let p = 0; p < 4; p += 1) expect(mem.pageInfo('bank', 'bank', p).where).toBe('swapped');
    // The LRU order is unchanged: the next eviction still takes page 4, the oldest resident one.
    mem.read('bank', 'bank', 0, 0, 1);
    expect(mem.pageInfo('bank', 'bank', 4).where).toBe('swapped');
    mem.checkInvariants();
  });

  it('a swap read failure during a snapshot leaves every changed flag set', () => {
    const { mem, swap } = setup();
    mem.createContainer('bank', 'bank', 20);
    for (let p = 0; p < 20; p += 1) fillPage(mem, 'bank', 'bank', p, 1);
    swap.failNextRead();
    expect(() => mem.snapshot('bank', 'changed')).toThrow(/injected swap read failure/);
    expect(mem.containers('bank')[0]!.pagesChanged).toBe(20);
    expect(mem.snapshot('bank', 'changed').entries.length).toBe(20);
    mem.checkInvariants();
  });

  it('an unknown job gives an empty snapshot; a bad mode is rejected', () => {
    const { mem } = setup();
    expect(mem.snapshot('nojob', 'full')).toEqual({ staging: new Uint8Array(0), entries: [], pagesSwappedIn: 0, pageCount: 0 });
    expectGridError(() => mem.snapshot('nojob', 'some' as 'full'), 'invalid-argument', 'bad snapshot mode "some"');
  });

  it('restoreChanged marks snapshotted pages changed again, checking every entry first', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'a', 4);
    const snap = mem.snapshot('bank', 'changed');
    mem.restoreChanged('bank', snap.entries.slice(1, 3));
    expect(mem.containers('bank')[0]!.pagesChanged).toBe(2);
    expect(mem.pageInfo('bank', 'a', 1).changed).toBe(true);
    expect(mem.pageInfo('bank', 'a', 0).changed).toBe(false);
    const bad = [{ container: 'a', page: 0, version: 0n, stagingOffset: 0 }, { container: 'a', page: 9, version: 0n, stagingOffset: 0 }];
    expectGridError(() => mem.restoreChanged('bank', bad), 'invalid-argument', 'page 9 out of range for container "a" (4 pages)');
    expect(mem.pageInfo('bank', 'a', 0).changed).toBe(false);
    mem.checkInvariants();
  });
});

describe('loadPage (restore)', () => {
  it('sets content, clears changed, makes the page exclusive and bumps its version', () => {
    const { mem } = setup();
    mem.createContainer('bank', 'bank', 2);
    mem.loadPage('bank', 'bank', 1, new Uint8Array(PAGE_BYTES).fill(9));
    expect(mem.pageInfo('bank', 'bank', 1)).toEqual({ owner: 'node-a', state: 'exclusive', version: 1n, changed: false, where: 'resident' });
    expect(mem.read('bank', 'bank', 1, 4090, 6).data).toEqual(new Uint8Array(6).fill(9));
    expect(mem.containers('bank')[0]!.pagesChanged).toBe(1);
    expectGridError(() => mem.loadPage('bank', 'bank', 0, new Uint8Array(100)), 'invalid-argument',
      'loadPage of page 0 of "bank" needs exactly 4096 bytes, got 100 bytes');
    expectGridError(() => mem.loadPage('bank', 'bank', 2, new Uint8Array(PAGE_BYTES)), 'invalid-argument',
      'page 2 out of range for container "bank" (2 pages)');
  });

  it('overwrites a swapped page without reading the old content back', () => {
    const { mem, swap } = setup();
    mem.createContainer('bank', 'bank', 17);
    for (let p = 0; p < 17; p += 1) fillPage(mem, 'bank', 'bank', p, 1);
    expect(mem.pageInfo('bank', 'bank', 0).where).toBe('swapped');
    const reads = swap.reads;
    mem.loadPage('bank', 'bank', 0, new Uint8Array(PAGE_BYTES).fill(4));
    expect(swap.reads).toBe(reads);
    expect(mem.pageInfo('bank', 'bank', 0)).toMatchObject({ where: 'resident', version: 2n });
    expect(mem.read('bank', 'bank', 0, 0, 1).data).toEqual(Uint8Array.from([4]));
    mem.checkInvariants();
  });
});

describe('restore in bulk (lendFrame, installFrame, loadZeroPage)', () => {
  /** Writes `value` into a lent frame's bytes, as a restore's read would. */
  function fillFrame(mem: PageMemory, frame: number, value: number): void {
    const chunk = mem.frameChunks[Math.floor(frame / FRAMES_PER_CHUNK)]!;
    chunk.fill(value, (frame % FRAMES_PER_CHUNK) * PAGE_BYTES, (frame % FRAMES_PER_CHUNK + 1) * PAGE_BYTES);
  }

  it('a lent frame is no page until installed; installed, it is the page with loadPage\'s flags', () => {
    const { mem } = setup();
    mem.createContainer('job', 'bank', 8);
    const f = mem.lendFrame();
    expect(f).toBe(0); // the free stack hands out frame 0 first
    expect(mem.stats()).toMatchObject({ framesUsed: 0, framesLent: 1 });
    mem.checkInvariants();
    fillFrame(mem, f, 7);
    expect(mem.pageInfo('job', 'bank', 3).where).toBe('zero'); // not visible before installFrame
    mem.installFrame('job', 'bank', 3, f);
    expect(mem.stats()).toMatchObject({ framesUsed: 1, framesLent: 0 });
    expect(mem.pageInfo('job', 'bank', 3)).toEqual({ owner: 'node-a', state: 'exclusive', version: 1n, changed: false, where: 'resident' });
    expect(mem.readPages('job', 'bank', 3, 1).every((b) => b === 7)).toBe(true);
    mem.checkInvariants();
  });

  it('lending never evicts; a returned frame is free again', () => {
    const { mem } = setup();
    mem.createContainer('job', 'bank', 32);
    for (let p = 0; p < 15; p++) fillPage(mem, 'job', 'bank', p, 1);
    const last = mem.lendFrame();
    expect(last).toBeGreaterThanOrEqual(0);
    expect(mem.lendFrame()).toBe(-1);
    expect(mem.stats()).toMatchObject({ framesUsed: 15, framesLent: 1, swapOuts: 0 });
    mem.returnFrame(last);
    expect(mem.stats()).toMatchObject({ framesUsed: 15, framesLent: 0 });
    mem.checkInvariants();
  });

  it('installing over a resident or swapped page frees its old frame or slot; loadZeroPage makes a page zero', () => {
    const { mem } = setup();
    mem.createContainer('job', 'bank', 32);
    for (let p = 0; p < 17; p++) fillPage(mem, 'job', 'bank', p, 1); // page 0 is swapped out
    expect(mem.pageInfo('job', 'bank', 0).where).toBe('swapped');
    mem.loadZeroPage('job', 'bank', 16); // frees a frame
    expect(mem.pageInfo('job', 'bank', 16)).toMatchObject({ where: 'zero', changed: false, version: 2n });
    const f = mem.lendFrame();
    fillFrame(mem, f, 9);
    mem.installFrame('job', 'bank', 0, f);
    expect(mem.pageInfo('job', 'bank', 0)).toMatchObject({ where: 'resident', version: 2n });
    expect(mem.stats()).toMatchObject({ framesUsed: 16, pagesSwapped: 0 });
    expect(mem.readPages('job', 'bank', 0, 1).every((b) => b === 9)).toBe(true);
    mem.checkInvariants();
  });

  it('installFrames installs a run of lent frames, and checks the whole run before it changes anything', () => {
    const { mem } = setup();
    mem.createContainer('job', 'bank', 8);
    const frames = [mem.lendFrame(), mem.lendFrame(), mem.lendFrame()];
    expect(frames).toEqual([0, 1, 2]);
    frames.forEach((f, i) => fillFrame(mem, f, 10 + i));
    expect(() => mem.installFrames('job', 'bank', 6, 3, 0)).toThrow(/run past container "bank"/);
    expect(mem.stats()).toMatchObject({ framesUsed: 0, framesLent: 3 });
    mem.installFrames('job', 'bank', 5, 3, 0);
    expect(mem.stats()).toMatchObject({ framesUsed: 3, framesLent: 0 });
    expect([5, 6, 7].map((p) => mem.readPages('job', 'bank', p, 1)[0])).toEqual([10, 11, 12]);
    expect(mem.pageInfo('job', 'bank', 7)).toMatchObject({ where: 'resident', changed: false, version: 1n });
    mem.checkInvariants();
  });

  it('after dropJob, frames are lent again in page order (a restore reads runs of pages into runs of frames)', () => {
    const { mem } = setup();
    mem.createContainer('job', 'bank', 8);
    for (let p = 0; p < 8; p++) fillPage(mem, 'job', 'bank', p, p);
    mem.dropJob('job');
    expect(Array.from({ length: 8 }, () => mem.lendFrame())).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });
});
