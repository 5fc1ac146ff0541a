// The binary page table of one node part: which page of which container sits
// at which offset of the part's .pages file, with its CRC32C, its version and
// the epoch that produced it. Little-endian throughout:
//   header:  "GCPT" | format u32 | epoch u64 | entryCount u32 | containerCount u32
//            | containerCount x (nameBytes u16 | UTF-8 name)
//   records: entryCount x 36 bytes:
//            container index u32 | page u32 | data offset u64 | crc32c u32 | version u64 | origin epoch u64
// Columns (one typed array per field) instead of one object per page: a 1 GiB
// part has 262,144 pages, and the writer fills the table while checksumming.
// Invariants:
//   1. decode(encode(t)) equals t; the byte length is exactly header + 36 x entryCount.
//   2. decode accepts only well-formed tables: every container index names a
//      header container, offsets are page aligned, origin epoch <= table epoch.
//      Anything else is data loss, reported with the table's file name.

import { GridError } from '../../common/errors.js';
import { MAX_CONTAINERS, PAGE_BYTES } from './layout.js';

export const TABLE_MAGIC = 'GCPT';
export const TABLE_FORMAT_VERSION = 1;
export const TABLE_RECORD_BYTES = 36;
const FIXED_HEADER_BYTES = 24;

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
}

export function allocatePageTable(epoch: bigint, containers: string[], count: number): PageTable {
  return {
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
  const headerBytes = FIXED_HEADER_BYTES + names.reduce((sum, n) => sum + 2 + n.byteLength, 0);
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
  for (let i = 0; i < table.count; i++, at += TABLE_RECORD_BYTES) {
    view.setUint32(at, table.containerIndex[i]!, true);
    view.setUint32(at + 4, table.page[i]!, true);
    view.setBigUint64(at + 8, BigInt(table.dataOffset[i]!), true);
    view.setUint32(at + 16, table.crc32c[i]!, true);
    view.setBigUint64(at + 20, table.version[i]!, true);
    view.setBigUint64(at + 28, table.originEpoch[i]!, true);
  }
  return out;
}

/** Decodes a page table; `where` (the file's path) prefixes every error. */
export function decodePageTable(bytes: Uint8Array, where: string): PageTable {
  const bad = (what: string): GridError => new GridError('data-loss', `${where}: bad page table: ${what}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < FIXED_HEADER_BYTES) throw bad(`${bytes.byteLength} bytes is shorter than the header`);
  const magic = new TextDecoder().decode(bytes.subarray(0, 4));
  if (magic !== TABLE_MAGIC) throw bad(`magic ${JSON.stringify(magic)}, expected ${TABLE_MAGIC}`);
  const format = view.getUint32(4, true);
  if (format !== TABLE_FORMAT_VERSION) throw bad(`format version ${format}, expected ${TABLE_FORMAT_VERSION}`);
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
  const expectedBytes = at + TABLE_RECORD_BYTES * count;
  if (bytes.byteLength !== expectedBytes) {
    throw bad(`${bytes.byteLength} bytes, expected ${expectedBytes} for ${count} entries`);
  }
  const table = allocatePageTable(epoch, containers, count);
  for (let i = 0; i < count; i++, at += TABLE_RECORD_BYTES) {
    const containerIndex = view.getUint32(at, true);
    const dataOffset = view.getBigUint64(at + 8, true);
    const originEpoch = view.getBigUint64(at + 28, true);
    if (containerIndex >= containerCount) throw bad(`entry ${i}: container index ${containerIndex} out of range`);
    if (dataOffset > BigInt(Number.MAX_SAFE_INTEGER) || dataOffset % BigInt(PAGE_BYTES) !== 0n) {
      throw bad(`entry ${i}: data offset ${dataOffset} is not a page-aligned safe integer`);
    }
    if (originEpoch > epoch) throw bad(`entry ${i}: origin epoch ${originEpoch} is after the table's epoch ${epoch}`);
    table.containerIndex[i] = containerIndex;
    table.page[i] = view.getUint32(at + 4, true);
    table.dataOffset[i] = Number(dataOffset);
    table.crc32c[i] = view.getUint32(at + 16, true);
    table.version[i] = view.getBigUint64(at + 20, true);
    table.originEpoch[i] = originEpoch;
  }
  return table;
}
