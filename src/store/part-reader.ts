// Opens one node part of a committed epoch for reading: checks everything that
// can be checked without page data (the table's size and sha256 against the
// manifest, its decoding, its entries against the epoch's containers, the data
// file's size). Pages are read and their CRCs checked by part-stream.ts; the
// callers decide what a mismatch means (ARCHITECTURE §3.6).
// Invariants:
//   1. Every error is data-loss and starts with "epoch <n>: <absolute file>",
//      plus " page <container>#<page> (offset <o>)" when a page is known.
//   2. An OpenedPart's entries all lie inside the data file the manifest
//      describes, name a container of the epoch below its pageCount, and no
//      (container, page) appears twice in the part.
//   3. A zero page (page-table.ts format 2) is read from nowhere: it is the
//      zero page, whose CRC its entry was checked to carry; the data file
//      holds exactly the part's other pages (its size says so).

import { readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { GridError } from '../common/errors.js';
import { isErrno } from '../runtime/durable-fs.js';
import { PAGE_BYTES } from './layout.js';
import { sha256Hex, type EpochManifest, type PartInfo } from './manifest.js';
import { decodePageTable, type PageTable } from './page-table.js';

export interface OpenedPart {
  epoch: bigint;
  part: PartInfo;
  dataPath: string;
  tablePath: string;
  table: PageTable;
}

/** Whether a part has files to read: a part of no pages has none (epoch-writer.ts invariant 5). */
export function hasFiles(part: PartInfo): boolean {
  return part.tableBytes !== 0;
}

export function hex32(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

export function pageLabel(opened: OpenedPart, entry: number): string {
  const t = opened.table;
  return `page ${t.containers[t.containerIndex[entry]!]}#${t.page[entry]} (${t.zero[entry] ? 'zero page' : `offset ${t.dataOffset[entry]}`})`;
}

export function pageWhere(opened: OpenedPart, entry: number): string {
  return `epoch ${opened.epoch}: ${opened.dataPath} ${pageLabel(opened, entry)}`;
}

export function crcMismatch(opened: OpenedPart, entry: number, got: number): string {
  return `${pageWhere(opened, entry)}: crc32c mismatch, expected ${hex32(opened.table.crc32c[entry]!)}, got ${hex32(got)}`;
}

/** Reads, authenticates and decodes a part's table; throws data-loss naming the table file. */
export async function openPart(dir: string, manifest: EpochManifest, part: PartInfo): Promise<OpenedPart> {
  const epoch = manifest.epoch;
  const tablePath = path.join(dir, part.tableFile);
  const lost = (what: string): GridError => new GridError('data-loss', `epoch ${epoch}: ${tablePath}: ${what}`);
  let bytes: Buffer;
  try {
    bytes = await readFile(tablePath);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw lost('page table is missing');
    throw err;
  }
  if (bytes.byteLength !== part.tableBytes) throw lost(`page table has ${bytes.byteLength} bytes, manifest says ${part.tableBytes}`);
  const digest = sha256Hex(bytes);
  if (digest !== part.tableDigest) throw lost(`page table sha256 ${digest}, manifest says ${part.tableDigest}`);
  const table = decodePageTable(bytes, `epoch ${epoch}: ${tablePath}`);
  if (table.epoch !== epoch) throw lost(`page table is for epoch ${table.epoch}`);
  if (table.count !== part.pageCount) throw lost(`page table has ${table.count} pages, manifest says ${part.pageCount}`);
  const opened: OpenedPart = { epoch, part, dataPath: path.join(dir, part.dataFile), tablePath, table };
  checkEntries(opened, manifest, lost);
  return opened;
}

function checkEntries(opened: OpenedPart, manifest: EpochManifest, lost: (what: string) => GridError): void {
  const { table, part } = opened;
  const pageCounts = new Map(manifest.containers.map((c) => [c.name, c.pageCount]));
  const limits = table.containers.map((name) => {
    const pageCount = pageCounts.get(name);
    if (pageCount === undefined) throw lost(`page table references container ${name}, which the manifest does not list`);
    return pageCount;
  });
  let ascending = true;
  let lastKey = -1;
  let dataPages = 0;
  for (let i = 0; i < table.count; i++) {
    const c = table.containerIndex[i]!;
    const page = table.page[i]!;
    if (page >= limits[c]!) throw lost(`entry ${i}: page ${table.containers[c]}#${page} is beyond the container's ${limits[c]} pages`);
    const key = c * 2 ** 32 + page;
    if (key <= lastKey) ascending = false;
    lastKey = key;
    if (table.zero[i]) continue;
    dataPages += 1;
    if (table.dataOffset[i]! + PAGE_BYTES > part.dataBytes) {
      throw lost(`entry ${i}: page ${table.containers[c]}#${page} at offset ${table.dataOffset[i]} lies beyond the ${part.dataBytes} data bytes`);
    }
  }
  if (dataPages * PAGE_BYTES !== part.dataBytes) throw lost(`page table has ${dataPages} pages with data (and ${table.count - dataPages} zero pages), manifest says ${part.dataBytes} data bytes`);
  // Tables written from an agent's snapshot are in (container, page) order: the sort (and its keys) only for others.
  if (ascending) return;
  const keys = Float64Array.from({ length: table.count }, (_, i) => table.containerIndex[i]! * 2 ** 32 + table.page[i]!).sort();
  for (let i = 1; i < keys.length; i++) {
    if (keys[i] === keys[i - 1]) throw lost(`page ${table.containers[Math.floor(keys[i]! / 2 ** 32)]}#${keys[i]! % 2 ** 32} is listed twice`);
  }
}

/**
 * The data file's size problem, or null when it has exactly the manifest's size.
 * A short file names the first page that lies beyond its end.
 */
export async function dataSizeError(opened: OpenedPart): Promise<string | null> {
  const expected = opened.part.dataBytes;
  let size: number;
  try {
    size = (await stat(opened.dataPath)).size;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return `epoch ${opened.epoch}: ${opened.dataPath}: data file is missing`;
    throw err;
  }
  if (size === expected) return null;
  const sizes = `data file has ${size} bytes, manifest says ${expected}`;
  const t = opened.table;
  let first = -1;
  for (let i = 0; i < t.count; i++) {
    if (t.zero[i]) continue;
    if (t.dataOffset[i]! + PAGE_BYTES > size && (first < 0 || t.dataOffset[i]! < t.dataOffset[first]!)) first = i;
  }
  if (first < 0) return `epoch ${opened.epoch}: ${opened.dataPath}: ${sizes}`;
  return `${pageWhere(opened, first)}: cut off, ${sizes}`;
}

/** Sorts entry indices by data offset in place (a no-op pass when, as usual, they already are). */
export function sortByOffset<T extends number[] | Uint32Array>(opened: OpenedPart, entries: T): T {
  const offsets = opened.table.dataOffset;
  for (let i = 1; i < entries.length; i++) {
    if (offsets[entries[i]!]! < offsets[entries[i - 1]!]!) {
      (entries as number[]).sort((a, b) => offsets[a]! - offsets[b]!); // a typed array sorts the same way, in place
      return entries;
    }
  }
  return entries;
}
