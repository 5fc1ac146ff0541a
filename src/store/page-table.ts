// The binary page table of one node part: which page of which container sits
// at which offset of the part's .pages file, with its CRC32C, its version and
// the epoch that produced it. Little-endian throughout:
//   header:  "GCPT" | format u32 | epoch u64 | entryCount u32 | containerCount u32
//            | containerCount x (nameBytes u16 | UTF-8 name) | zero padding to 8 bytes
//   records: entryCount x 36 bytes:
//            container index u32 | page u32 | data offset u64 | crc32c u32 | version u64 | origin epoch u64
// Format 2 (written since zero pages): a data offset field of exactly 1 (never
// a page-aligned offset) marks an all-zero page, which has no bytes in the
// .pages file; its crc32c is the CRC of 4 KiB of zeros. Format 1 tables (every
// page in the data file) are still read.
// The header is zero-padded to a multiple of 8 bytes so that the records start
// 4-byte aligned and are encoded/decoded through a Uint32Array view on
// little-endian hosts (DataView paths remain for big-endian ones, and decode
// copies an unaligned table's records through one): a 1 GiB part has 262,144
// records, and DataView's BigInt accessors cost ~0.5 us each. Columns (one
// typed array per field) instead of one object per page, for the same
// reason; a decoded table's version and origin columns are built only when
// read (no reader reads them per page).
// Invariants:
//   1. decode(encode(t)) equals t; the byte length is exactly header + 36 x entryCount.
//   2. decode accepts only well-formed tables: every container index names a
//      header container, offsets are page aligned, origin epoch <= table epoch,
//      a zero page carries the zero page's CRC (and occurs only in format 2).
//      Anything else is data loss, reported with the table's file name.

import { crc32c } from '@node-rs/crc32';
import { GridError } from '../common/errors.js';
import { MAX_CONTAINERS, PAGE_BYTES } from './layout.js';

export const TABLE_MAGIC = 'GCPT';
export const TABLE_FORMAT_VERSION = 2;
/** Tables of this format and later are read (format 1: no zero pages). */
const OLDEST_TABLE_FORMAT = 1;
/** The data offset field of a zero page (format 2). */
const ZERO_PAGE_FIELD = 1;
/** 4 KiB of zeros (never written to), and its CRC32C: what a zero page holds. */
export const ZERO_PAGE: Uint8Array = new Uint8Array(PAGE_BYTES);
export const ZERO_PAGE_CRC = crc32c(ZERO_PAGE);
export const TABLE_RECORD_BYTES = 36;
const FIXED_HEADER_BYTES = 24;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const RECORD_WORDS = TABLE_RECORD_BYTES / 4;
const TWO_32 = 2 ** 32;

const padTo8 = (n: number): number => Math.ceil(n / 8) * 8;

export interface PageTable {
  epoch: bigint;
  containers: string[];
  count: number;
  containerIndex: Uint32Array;
  page: Uint32Array;
  dataOffset: Float64Array;
  crc32c: Uint32Array;
  version: BigUint64Array;
  originEpoch: BigUint64Array;
  /** 1: an all-zero page, with no bytes in the data file (its dataOffset is 0 and unused). */
  zero: Uint8Array;
}

export function allocatePageTable(epoch: bigint, containers: string[], count: number): PageTable {
  return {
    zero: new Uint8Array(count),
    epoch,
    containers,
    count,
    containerIndex: new Uint32Array(count),
    page: new Uint32Array(count),
    dataOffset: new Float64Array(count),
    crc32c: new Uint32Array(count),
    version: new BigUint64Array(count),
    originEpoch: new BigUint64Array(count),
  };
}

export function encodePageTable(table: PageTable): Uint8Array {
  const encoder = new TextEncoder();
  const names = table.containers.map((name) => encoder.encode(name));
  const headerBytes = padTo8(FIXED_HEADER_BYTES + names.reduce((sum, n) => sum + 2 + n.byteLength, 0));
  const out = new Uint8Array(headerBytes + TABLE_RECORD_BYTES * table.count);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out.set(encoder.encode(TABLE_MAGIC), 0);
  view.setUint32(4, TABLE_FORMAT_VERSION, true);
  view.setBigUint64(8, table.epoch, true);
  view.setUint32(16, table.count, true);
  view.setUint32(20, names.length, true);
  let at = FIXED_HEADER_BYTES;
  for (const name of names) {
    view.setUint16(at, name.byteLength, true);
    out.set(name, at + 2);
    at += 2 + name.byteLength;
  }
  if (LITTLE_ENDIAN) encodeRecordsLE(table, new Uint32Array(out.buffer, out.byteOffset + headerBytes, RECORD_WORDS * table.count));
  else encodeRecordsDataView(table, view, headerBytes);
  return out;
}

function encodeRecordsLE(t: PageTable, words: Uint32Array): void {
  const version = new Uint32Array(t.version.buffer, t.version.byteOffset, 2 * t.count);
  const origin = new Uint32Array(t.originEpoch.buffer, t.originEpoch.byteOffset, 2 * t.count);
  for (let i = 0, w = 0; i < t.count; i++, w += RECORD_WORDS) {
    const offset = t.zero[i] ? ZERO_PAGE_FIELD : t.dataOffset[i]!;
    words[w] = t.containerIndex[i]!;
    words[w + 1] = t.page[i]!;
    words[w + 2] = offset % TWO_32;
    words[w + 3] = Math.floor(offset / TWO_32);
    words[w + 4] = t.crc32c[i]!;
    words[w + 5] = version[2 * i]!;
    words[w + 6] = version[2 * i + 1]!;
    words[w + 7] = origin[2 * i]!;
    words[w + 8] = origin[2 * i + 1]!;
  }
}

function encodeRecordsDataView(t: PageTable, view: DataView, start: number): void {
  for (let i = 0, at = start; i < t.count; i++, at += TABLE_RECORD_BYTES) {
    view.setUint32(at, t.containerIndex[i]!, true);
    view.setUint32(at + 4, t.page[i]!, true);
    view.setBigUint64(at + 8, BigInt(t.zero[i] ? ZERO_PAGE_FIELD : t.dataOffset[i]!), true);
    view.setUint32(at + 16, t.crc32c[i]!, true);
    view.setBigUint64(at + 20, t.version[i]!, true);
    view.setBigUint64(at + 28, t.originEpoch[i]!, true);
  }
}

/** Decodes a page table; `where` (the file's path) prefixes every error. */
export function decodePageTable(bytes: Uint8Array, where: string): PageTable {
  const bad = (what: string): GridError => new GridError('data-loss', `${where}: bad page table: ${what}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < FIXED_HEADER_BYTES) throw bad(`${bytes.byteLength} bytes is shorter than the header`);
  const magic = new TextDecoder().decode(bytes.subarray(0, 4));
  if (magic !== TABLE_MAGIC) throw bad(`magic ${JSON.stringify(magic)}, expected ${TABLE_MAGIC}`);
  const format = view.getUint32(4, true);
  if (format < OLDEST_TABLE_FORMAT || format > TABLE_FORMAT_VERSION) throw bad(`format version ${format}, expected ${OLDEST_TABLE_FORMAT} to ${TABLE_FORMAT_VERSION}`);
  const epoch = view.getBigUint64(8, true);
  const count = view.getUint32(16, true);
  const containerCount = view.getUint32(20, true);
  if (containerCount > MAX_CONTAINERS) throw bad(`${containerCount} containers, at most ${MAX_CONTAINERS}`);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const containers: string[] = [];
  let at = FIXED_HEADER_BYTES;
  for (let c = 0; c < containerCount; c++) {
    if (at + 2 > bytes.byteLength) throw bad(`header ends inside container name ${c}`);
    const length = view.getUint16(at, true);
    if (length === 0 || at + 2 + length > bytes.byteLength) throw bad(`container name ${c} has bad length ${length}`);
    let name: string;
    try {
      name = decoder.decode(bytes.subarray(at + 2, at + 2 + length));
    } catch {
      throw bad(`container name ${c} is not UTF-8`);
    }
    if (containers.includes(name)) throw bad(`container ${JSON.stringify(name)} listed twice`);
    containers.push(name);
    at += 2 + length;
  }
  const headerBytes = padTo8(at);
  if (headerBytes > bytes.byteLength) throw bad('header ends inside its padding');
  for (; at < headerBytes; at++) if (bytes[at] !== 0) throw bad(`non-zero header padding at byte ${at}`);
  const expectedBytes = headerBytes + TABLE_RECORD_BYTES * count;
  if (bytes.byteLength !== expectedBytes) {
    throw bad(`${bytes.byteLength} bytes, expected ${expectedBytes} for ${count} entries`);
  }
  // Aligned little-endian records are read through a Uint32Array view; anything else through a copy that is.
  const words = LITTLE_ENDIAN && (bytes.byteOffset + headerBytes) % 4 === 0
    ? new Uint32Array(bytes.buffer, bytes.byteOffset + headerBytes, RECORD_WORDS * count)
    : recordWords(view, headerBytes, count);
  const table = decodeRecords(epoch, containers, count, words);
  checkRecords(table, words, format, bad);
  return table;
}

/** The records as little-endian u32 words, for a table not aligned in its buffer (or a big-endian host). */
function recordWords(view: DataView, start: number, count: number): Uint32Array {
  const words = new Uint32Array(RECORD_WORDS * count);
  for (let w = 0; w < words.length; w++) words[w] = view.getUint32(start + 4 * w, true);
  return words;
}

/**
 * The columns a reader uses, copied out of the records; version and origin
 * epoch (which no reader needs per page) are decoded only if asked for. A
 * 1 GiB part's table is 262,144 records: two u64 columns it never reads are
 * 4 MB of fresh memory whose page faults alone cost ~20 ms on a VM.
 */
function decodeRecords(epoch: bigint, containers: string[], count: number, words: Uint32Array): PageTable {
  const containerIndex = new Uint32Array(count);
  const page = new Uint32Array(count);
  const dataOffset = new Float64Array(count);
  const crc = new Uint32Array(count);
  for (let i = 0, w = 0; i < count; i++, w += RECORD_WORDS) {
    containerIndex[i] = words[w]!;
    page[i] = words[w + 1]!;
    dataOffset[i] = words[w + 3]! * TWO_32 + words[w + 2]!; // exact below 2^53; checkRecords bounds the high word
    crc[i] = words[w + 4]!;
  }
  const u64Column = (first: number): (() => BigUint64Array) => {
    let column: BigUint64Array | null = null;
    return () => (column ??= BigUint64Array.from({ length: count }, (_, i) => BigInt(words[RECORD_WORDS * i + first + 1]!) * BigInt(TWO_32) + BigInt(words[RECORD_WORDS * i + first]!)));
  };
  const table = { zero: new Uint8Array(count), epoch, containers, count, containerIndex, page, dataOffset, crc32c: crc } as Omit<PageTable, 'version' | 'originEpoch'>;
  Object.defineProperty(table, 'version', { enumerable: true, get: u64Column(5) });
  Object.defineProperty(table, 'originEpoch', { enumerable: true, get: u64Column(7) });
  return table as PageTable;
}

function checkRecords(t: PageTable, words: Uint32Array, format: number, bad: (what: string) => GridError): void {
  const containerCount = t.containers.length;
  const epochHigh = Number(t.epoch >> 32n);
  const epochLow = Number(t.epoch & 0xffffffffn);
  for (let i = 0; i < t.count; i++) {
    if (t.containerIndex[i]! >= containerCount) throw bad(`entry ${i}: container index ${t.containerIndex[i]} out of range`);
    if (t.dataOffset[i] === ZERO_PAGE_FIELD && format >= 2) {
      // A zero page: no bytes in the data file; its checksum is still checked (against the zero page's).
      if (t.crc32c[i] !== ZERO_PAGE_CRC) throw bad(`entry ${i}: zero page with crc32c ${t.crc32c[i]}, expected the zero page's ${ZERO_PAGE_CRC}`);
      t.zero[i] = 1;
      t.dataOffset[i] = 0;
    }
    const offset = t.dataOffset[i]!;
    if (!(offset <= Number.MAX_SAFE_INTEGER) || offset % PAGE_BYTES !== 0) {
      throw bad(`entry ${i}: data offset ${offset <= Number.MAX_SAFE_INTEGER ? offset : '>2^53'} is not a page-aligned safe integer`);
    }
    const originHigh = words[RECORD_WORDS * i + 8]!;
    if (originHigh > epochHigh || (originHigh === epochHigh && words[RECORD_WORDS * i + 7]! > epochLow)) {
      throw bad(`entry ${i}: origin epoch ${t.originEpoch[i]} is after the table's epoch ${t.epoch}`);
    }
  }
}
