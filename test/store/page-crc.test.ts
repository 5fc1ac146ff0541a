// page-crc.ts invariant 1: the CRC a run of pages must have, combined from
// the pages' own CRCs, is the native CRC32C of the run's bytes; a run check
// therefore catches any corruption confined to one page that the page's own
// check would (the reader relies on it to check runs with one call).

import { randomFillSync } from 'node:crypto';
import fc from 'fast-check';
import { crc32c } from '@node-rs/crc32';
import { describe, expect, it } from 'vitest';
import { PAGE_BYTES } from '../../src/store/layout.js';
import { runCrc, shiftByPage } from '../../src/store/page-crc.js';

function pagesOf(bytes: Uint8Array): Uint32Array {
  return Uint32Array.from({ length: bytes.byteLength / PAGE_BYTES }, (_, i) => crc32c(bytes.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES)));
}

describe('runCrc', () => {
  it('equals the native CRC32C of the run, for any run of any pages (property)', () => {
    const bytes = randomFillSync(new Uint8Array(64 * PAGE_BYTES));
    bytes.fill(0, 5 * PAGE_BYTES, 9 * PAGE_BYTES); // zero pages too
    const crcs = pagesOf(bytes);
    fc.assert(fc.property(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 1, max: 64 }), (from, n) => {
      const to = Math.min(64, from + n);
      const entries = Array.from({ length: 64 }, (_, i) => i);
      expect(runCrc(crcs, entries, from, to)).toBe(crc32c(bytes.subarray(from * PAGE_BYTES, to * PAGE_BYTES)));
    }));
  });

  it('follows the entries given, in their order (pages need not be in table order)', () => {
    const bytes = randomFillSync(new Uint8Array(8 * PAGE_BYTES));
    const crcs = pagesOf(bytes);
    const order = [5, 2, 7];
    const run = Buffer.concat(order.map((i) => bytes.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES)));
    expect(runCrc(crcs, order, 0, 3)).toBe(crc32c(run));
    expect(runCrc(crcs, order, 1, 2)).toBe(crcs[2]);
  });

  it('a single flipped bit in any page of a run changes the run CRC', () => {
    const bytes = randomFillSync(new Uint8Array(32 * PAGE_BYTES));
    const expected = runCrc(pagesOf(bytes), Array.from({ length: 32 }, (_, i) => i), 0, 32);
    fc.assert(fc.property(fc.integer({ min: 0, max: 32 * PAGE_BYTES * 8 - 1 }), (bit) => {
      const copy = Uint8Array.from(bytes);
      copy[bit >> 3] = copy[bit >> 3]! ^ (1 << (bit & 7));
      expect(crc32c(copy)).not.toBe(expected);
    }), { numRuns: 200 });
  });

  it('shiftByPage of 0 is 0 (a linear map)', () => {
    expect(shiftByPage(0)).toBe(0);
  });
});
