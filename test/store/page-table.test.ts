// The binary page table: exact round trip, and malformed bytes rejected as
// data-loss naming the file (ARCHITECTURE §3.6: a corrupt piece is detected).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GridError } from '../../src/common/errors.js';
import { PAGE_BYTES } from '../../src/store/layout.js';
import { TABLE_RECORD_BYTES, ZERO_PAGE_CRC, allocatePageTable, decodePageTable, encodePageTable, type PageTable } from '../../src/store/page-table.js';

function table(epoch: bigint, containers: string[], rows: Array<[number, number, number, number, bigint, bigint]>): PageTable {
  const t = allocatePageTable(epoch, containers, rows.length);
  rows.forEach(([c, page, offset, crc, version, origin], i) => {
    t.containerIndex[i] = c; t.page[i] = page; t.dataOffset[i] = offset; t.crc32c[i] = crc; t.version[i] = version; t.originEpoch[i] = origin;
  });
  return t;
}

function decodeError(bytes: Uint8Array): string {
  try {
    decodePageTable(bytes, '/x/n.table');
  } catch (err) {
    expect(err).toBeInstanceOf(GridError);
    expect((err as GridError).kind).toBe('data-loss');
    return (err as GridError).message;
  }
  throw new Error('decoded');
}

describe('page table', () => {
  it('encodes the documented layout: GCPT header, names, padding to 8 bytes, 36-byte little-endian records', () => {
    const t = table(7n, ['bank', 'log'], [[1, 12, 49152, 0x1a2b3c4d, 99n, 7n]]);
    const bytes = encodePageTable(t);
    expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe('GCPT');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    expect(view.getUint32(4, true)).toBe(2); // format (2: zero pages)
    expect(view.getBigUint64(8, true)).toBe(7n); // epoch
    expect(view.getUint32(16, true)).toBe(1); // entries
    expect(view.getUint32(20, true)).toBe(2); // containers
    expect(view.getUint16(24, true)).toBe(4);
    expect(new TextDecoder().decode(bytes.subarray(26, 30))).toBe('bank');
    expect(view.getUint16(30, true)).toBe(3);
    expect(new TextDecoder().decode(bytes.subarray(32, 35))).toBe('log');
    const records = 40; // 24 + (2 + 4) + (2 + 3) = 35, zero-padded to a multiple of 8
    expect([...bytes.subarray(35, 40)]).toEqual([0, 0, 0, 0, 0]);
    expect(bytes.byteLength).toBe(records + TABLE_RECORD_BYTES);
    expect(view.getUint32(records, true)).toBe(1);
    expect(view.getUint32(records + 4, true)).toBe(12);
    expect(view.getBigUint64(records + 8, true)).toBe(49152n);
    expect(view.getUint32(records + 16, true)).toBe(0x1a2b3c4d);
    expect(view.getBigUint64(records + 20, true)).toBe(99n);
    expect(view.getBigUint64(records + 28, true)).toBe(7n);
  });

  it('round trips any table (property)', () => {
    const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
    const arb = fc.record({
      epoch: u64,
      containers: fc.uniqueArray(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/), { minLength: 1, maxLength: 5 }),
      rows: fc.array(fc.tuple(fc.nat(), fc.nat({ max: 2 ** 32 - 1 }), fc.nat({ max: 2 ** 40 }), fc.nat({ max: 2 ** 32 - 1 }), u64, u64), { maxLength: 50 }),
    });
    fc.assert(
      fc.property(arb, ({ epoch, containers, rows }) => {
        const t = table(epoch, containers, rows.map(([c, p, o, crc, v, origin]) => [c % containers.length, p, o * PAGE_BYTES, crc, v, origin % (epoch + 1n)]));
        expect(decodePageTable(encodePageTable(t), 'x')).toEqual(t);
      }),
    );
  });

  it('rejects malformed tables naming the file', () => {
    const good = encodePageTable(table(3n, ['bank'], [[0, 1, 0, 5, 1n, 3n], [0, 2, 4096, 6, 1n, 2n]]));
    const records = 32; // 24 + 2 + 4 = 30, padded to 32
    const mutate = (f: (b: Uint8Array, v: DataView) => void): Uint8Array => {
      const b = Uint8Array.from(good);
      f(b, new DataView(b.buffer));
      return b;
    };
    expect(decodeError(mutate((b) => (b[0] = 0x58)))).toMatch(/^\/x\/n\.table: bad page table: magic "XCPT"/);
    expect(decodeError(mutate((_, v) => v.setUint32(4, 3, true)))).toMatch(/format version 3, expected 1 to 2/);
    // A zero page (offset field 1) must carry the zero page's CRC; format 1 has no zero pages.
    expect(decodeError(mutate((_, v) => v.setBigUint64(records + 8, 1n, true)))).toMatch(/entry 0: zero page with crc32c 5, expected the zero page's/);
    const zeroOk = mutate((_, v) => { v.setBigUint64(records + 8, 1n, true); v.setUint32(records + 16, ZERO_PAGE_CRC, true); });
    const decoded = decodePageTable(zeroOk, 'x');
    expect([decoded.zero[0], decoded.zero[1], decoded.dataOffset[0]]).toEqual([1, 0, 0]);
    expect(decodeError(mutate((_, v) => { v.setUint32(4, 1, true); v.setBigUint64(records + 8, 1n, true); v.setUint32(records + 16, ZERO_PAGE_CRC, true); }))).toMatch(/data offset 1 is not a page-aligned/);
    expect(decodeError(good.subarray(0, good.byteLength - 1))).toMatch(/expected \d+ for 2 entries/);
    expect(decodeError(good.subarray(0, 10))).toMatch(/shorter than the header/);
    expect(decodeError(mutate((_, v) => v.setUint32(records, 1, true)))).toMatch(/entry 0: container index 1 out of range/);
    expect(decodeError(mutate((_, v) => v.setBigUint64(records + 8, 100n, true)))).toMatch(/entry 0: data offset 100 is not a page-aligned/);
    expect(decodeError(mutate((_, v) => v.setBigUint64(records + 28, 4n, true)))).toMatch(/origin epoch 4 is after the table's epoch 3/);
    expect(decodeError(mutate((_, v) => v.setUint16(24, 200, true)))).toMatch(/container name 0 has bad length 200/);
    expect(decodeError(mutate((b) => (b[31] = 1)))).toMatch(/non-zero header padding at byte 31/);
    expect(decodeError(mutate((_, v) => v.setUint32(records + 12, 2 ** 22, true)))).toMatch(/entry 0: data offset >2\^53 is not a page-aligned/);
    // A table not 4-byte aligned in its buffer decodes through the DataView path, same result.
    const shifted = new Uint8Array(good.byteLength + 1);
    shifted.set(good, 1);
    expect(decodePageTable(shifted.subarray(1), 'x')).toEqual(decodePageTable(good, 'x'));
  });
});
