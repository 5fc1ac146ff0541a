// Opens one node part of a committed epoch for reading and checks everything
// that can be checked without reading page data: the table's size and sha256
// against the manifest, its decoding, its entries against the epoch's
// containers and the data file's size. Page CRCs are checked by the callers,
// which know which pages they read (ARCHITECTURE §3 invariant 6).
// Invariants:
//   1. Every error is data-loss and starts with "epoch <n>: <absolute file>",
//      plus " page <container>#<page> (offset <o>)" when a page is known.
//   2. An OpenedPart's entries all lie inside the data file the manifest
//      describes, name a container of the epoch below its pageCount, and no
//      (container, page) appears twice in the part.

import { readFile, open, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { GridError } from '../../common/errors.js';
import { isErrno } from './durable-fs.js';
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

export function hex32(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

export function pageLabel(opened: OpenedPart, entry: number): string {
  const t = opened.table;
  return `page ${t.containers[t.containerIndex[entry]!]}#${t.page[entry]} (offset ${t.dataOffset[entry]})`;
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
  const seen = new Set<number>();
  for (let i = 0; i < table.count; i++) {
    const c = table.containerIndex[i]!;
    const page = table.page[i]!;
    const name = table.containers[c]!;
    if (page >= limits[c]!) throw lost(`entry ${i}: page ${name}#${page} is beyond the container's ${limits[c]} pages`);
    if (table.dataOffset[i]! + PAGE_BYTES > part.dataBytes) {
      throw lost(`entry ${i}: page ${name}#${page} at offset ${table.dataOffset[i]} lies beyond the ${part.dataBytes} data bytes`);
    }
    const key = c * 2 ** 32 + page;
    if (seen.has(key)) throw lost(`page ${name}#${page} is listed twice`);
    seen.add(key);
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
    if (t.dataOffset[i]! + PAGE_BYTES > size && (first < 0 || t.dataOffset[i]! < t.dataOffset[first]!)) first = i;
  }
  if (first < 0) return `epoch ${opened.epoch}: ${opened.dataPath}: ${sizes}`;
  return `${pageWhere(opened, first)}: cut off, ${sizes}`;
}

/** Reads exactly `length` bytes at `position` into buf[offset..]; throws data-loss at end of file. */
export async function readExactly(file: string, reads: Array<{ offset: number; length: number; position: number }>, buf: Uint8Array, epoch: bigint): Promise<void> {
  const fh = await open(file, 'r');
  try {
    for (const r of reads) {
      let done = 0;
      while (done < r.length) {
        const { bytesRead } = await fh.read(buf, r.offset + done, r.length - done, r.position + done);
        if (bytesRead === 0) {
          throw new GridError('data-loss', `epoch ${epoch}: ${file}: ends at ${r.position + done}, expected data up to ${r.position + r.length}`);
        }
        done += bytesRead;
      }
    }
  } finally {
    await fh.close();
  }
}
