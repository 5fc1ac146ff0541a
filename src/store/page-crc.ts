// The CRC32C a run of pages must have, from the CRCs its page table holds for
// each page: so that a reader checks a run of N pages with one native CRC
// call over its bytes instead of N calls (a call per 4 KiB page is ~0.3 us of
// overhead, as much again as the CRC itself).
//
// Intuition (zlib's crc32_combine): a CRC is linear over GF(2), so
//   crc(A ‖ B) = crc(A) · x^(8·|B|) mod P  ⊕  crc(B).
// With |B| fixed at one page, multiplying by x^(8·4096) mod P is a fixed
// linear map of 32 bits, applied through four 256-entry tables.
// What a run check proves: the run's bytes hash to the combination of its
// pages' CRCs. A corruption confined to one page is caught exactly when that
// page's own check would catch it (the other pages add nothing to the error
// polynomial, and x^k is coprime to P); errors spread over several pages of
// a run are missed only if they cancel modulo P, the same 2^-32 chance any
// CRC32 check leaves. A run that fails is checked page by page to name the
// page (part-stream.ts).
// Invariants:
//   1. runCrc(crcs of pages p1..pn) === crc32c(p1 ‖ … ‖ pn) for 4 KiB pages
//      (test/store/page-crc.test.ts checks it against the native CRC).

import { PAGE_BYTES } from './layout.js';

/** CRC32C (Castagnoli), reflected. */
const POLY = 0x82f63b78;

/** a·b mod P, both reflected (bit 31 is x^0), as zlib's multmodp. */
function multModP(a: number, b: number): number {
  if (a === 0) return 0;
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if ((a & m) !== 0) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = (b & 1) !== 0 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(8·PAGE_BYTES) mod P: x (bit 30) squared log2(8·PAGE_BYTES) times. */
const PAGE_SHIFT = ((): number => {
  let x = 0x40000000;
  for (let bits = 1; bits < 8 * PAGE_BYTES; bits *= 2) x = multModP(x, x);
  return x;
})();

const SHIFT_TABLES = [0, 1, 2, 3].map((k) => Uint32Array.from({ length: 256 }, (_, v) => multModP(PAGE_SHIFT, (v << (8 * k)) >>> 0)));
const [T0, T1, T2, T3] = SHIFT_TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array];

/** crc(A) -> the CRC A would contribute with one more page after it: crc(A) · x^(8·4096) mod P. */
export function shiftByPage(crc: number): number {
  return (T0[crc & 0xff]! ^ T1[(crc >>> 8) & 0xff]! ^ T2[(crc >>> 16) & 0xff]! ^ T3[crc >>> 24]!) >>> 0;
}

/** The CRC32C of the pages entries[from..to) laid end to end, from their own CRCs. */
export function runCrc(crcs: Uint32Array, entries: ArrayLike<number>, from: number, to: number): number {
  let crc = crcs[entries[from]!]!;
  for (let k = from + 1; k < to; k++) crc = (shiftByPage(crc) ^ crcs[entries[k]!]!) >>> 0;
  return crc;
}
