// A node's part as staged, before any byte of it is on disk: its page list
// validated and laid out as the part's page table (planPageTable), its
// all-zero pages found and left out of the data file (layOutPart), then the
// CRC32C of every page filled in (fillChecksums). The writer (epoch-writer.ts)
// and the prepared digest (part-digest.ts) both build the table here, so the
// table a participant PREPARED and the one it writes on COMMIT are the same
// function of the same staged pages.
// Invariants:
//   1. Row i of the table is pages[i]: rows keep the staged order (the agent
//      stages container then page order), never re-sorted.
//   2. A page list that does not exactly fill staging, names a page twice,
//      or shares a staging slot is refused (invalid-argument), naming the page.
//   3. A page whose 4 KiB are all zero is a zero page: flagged in the table
//      (page-table.ts format 2) with the zero page's CRC, no bytes in the data
//      file. The data file is staging without its zero slots, in staging
//      order; every other row's dataOffset is its place there.

import { crc32c } from '@node-rs/crc32';
import { invalidArgument } from '../common/errors.js';
import { checkName } from '../common/names.js';
import { MAX_CONTAINERS, PAGE_BYTES, checkEpoch } from './layout.js';
import { ZERO_PAGE, ZERO_PAGE_CRC, allocatePageTable, type PageTable } from './page-table.js';

/** 1 MiB of pages per checksum slice: ~0.3 ms of CPU between turns of the event loop. */
const CHECKSUM_SLICE_PAGES = 256;
const MAX_U64 = (1n << 64n) - 1n;

export interface PartPage { container: string; page: number; version: bigint; stagingOffset: number }

/** The staged pages of one part of one epoch. */
export interface StagedPart {
  epoch: bigint;
  /** Exactly pages.length x 4 KiB: every slot of it is one page of `pages`. */
  staging: Uint8Array;
  pages: PartPage[];
}

/** Zero checks per turn of the event loop: a memcmp that stops at the first non-zero byte is cheap. */
const ZERO_SLICE_PAGES = 4096;
const ZERO_BUFFER = Buffer.from(ZERO_PAGE.buffer, ZERO_PAGE.byteOffset, PAGE_BYTES);

/** A part laid out for writing: its table, where each row's bytes are in staging, and what the data file holds. */
export interface PartLayout {
  table: PageTable;
  /** Row i's bytes are staging[stagingOffset[i], + 4 KiB) (the table's dataOffset is its place in the data file). */
  stagingOffset: Float64Array;
  /** Staging byte ranges the data file holds, in file order: staging without its zero pages (invariant 3). */
  runs: Array<{ start: number; bytes: number }>;
  dataBytes: number;
  zeroPages: number;
}

/** planPageTable, then the zero pages found and left out of the data file (invariant 3). */
export async function layOutPart(input: StagedPart): Promise<PartLayout> {
  const table = planPageTable(input);
  const staging = input.staging;
  const view = Buffer.from(staging.buffer, staging.byteOffset, staging.byteLength);
  const slots = table.count;
  const zeroSlot = new Uint8Array(slots);
  for (let start = 0; start < slots; start += ZERO_SLICE_PAGES) {
    const end = Math.min(slots, start + ZERO_SLICE_PAGES);
    for (let s = start; s < end; s++) zeroSlot[s] = view.compare(ZERO_BUFFER, 0, PAGE_BYTES, s * PAGE_BYTES, (s + 1) * PAGE_BYTES) === 0 ? 1 : 0;
    if (end < slots) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const fileOffsetOfSlot = new Float64Array(slots);
  const runs: PartLayout['runs'] = [];
  let dataBytes = 0;
  for (let s = 0; s < slots; s++) {
    if (zeroSlot[s]) continue;
    fileOffsetOfSlot[s] = dataBytes;
    const last = runs[runs.length - 1];
    if (last && last.start + last.bytes === s * PAGE_BYTES) last.bytes += PAGE_BYTES;
    else runs.push({ start: s * PAGE_BYTES, bytes: PAGE_BYTES });
    dataBytes += PAGE_BYTES;
  }
  const stagingOffset = Float64Array.from(table.dataOffset);
  let zeroPages = 0;
  for (let i = 0; i < table.count; i++) {
    const slot = stagingOffset[i]! / PAGE_BYTES;
    if (zeroSlot[slot]) {
      table.zero[i] = 1;
      table.dataOffset[i] = 0;
      zeroPages += 1;
    } else {
      table.dataOffset[i] = fileOffsetOfSlot[slot]!;
    }
  }
  return { table, stagingOffset, runs, dataBytes, zeroPages };
}

/**
 * CRC32C of every page, in slices of CHECKSUM_SLICE_PAGES with a turn of the
 * event loop between slices so the agent keeps answering (a 1 GiB part is
 * ~0.3 s of CRC). The writer runs it during the data file's fsync, a
 * participant after the thaw (part-digest.ts). A zero page's is the zero page's CRC.
 */
export async function fillChecksums(layout: PartLayout, staging: Uint8Array): Promise<void> {
  const { table, stagingOffset } = layout;
  for (let start = 0; start < table.count; start += CHECKSUM_SLICE_PAGES) {
    const end = Math.min(table.count, start + CHECKSUM_SLICE_PAGES);
    for (let i = start; i < end; i++) {
      const at = stagingOffset[i]!;
      table.crc32c[i] = table.zero[i] ? ZERO_PAGE_CRC : crc32c(staging.subarray(at, at + PAGE_BYTES));
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Validates the part's page list and lays out its table (fillChecksums fills in the CRCs). */
export function planPageTable(input: StagedPart): PageTable {
  const { epoch, pages, staging } = input;
  checkEpoch('epoch', epoch);
  if (!(staging instanceof Uint8Array)) throw invalidArgument('staging must be a Uint8Array');
  if (!Array.isArray(pages) || pages.length > 2 ** 32 - 1) throw invalidArgument('pages must be an array of at most 2^32-1 pages');
  if (staging.byteLength !== pages.length * PAGE_BYTES) {
    throw invalidArgument(
      `staging holds ${staging.byteLength} bytes but ${pages.length} pages need exactly ${pages.length * PAGE_BYTES}: pass the used part of the buffer`,
    );
  }
  const containers: string[] = [];
  const containerIndex = new Map<string, number>();
  const table = allocatePageTable(epoch, containers, pages.length);
  const slotTaken = new Uint8Array(pages.length);
  const keys = new Float64Array(pages.length);
  let ascending = true; // the agent stages pages in container then page order: then no sort is needed
  for (let i = 0; i < pages.length; i++) {
    const p = pages[i]!;
    let c = containerIndex.get(p.container);
    if (c === undefined) {
      c = containers.length;
      containerIndex.set(p.container, c);
      containers.push(checkName('container', p.container));
      if (containers.length > MAX_CONTAINERS) throw invalidArgument(`part references more than ${MAX_CONTAINERS} containers`);
    }
    if (!Number.isInteger(p.page) || p.page < 0 || p.page > 2 ** 32 - 1) throw invalidArgument(`page ${p.container}#${p.page}: page number must be a u32`);
    if (typeof p.version !== 'bigint' || p.version < 0n || p.version > MAX_U64) {
      throw invalidArgument(`page ${p.container}#${p.page}: version must be a u64 bigint`);
    }
    const slot = p.stagingOffset / PAGE_BYTES;
    if (!Number.isInteger(slot) || slot < 0 || slot >= pages.length) {
      throw invalidArgument(`page ${p.container}#${p.page}: staging offset ${p.stagingOffset} is not a page-aligned offset inside staging`);
    }
    if (slotTaken[slot]) throw invalidArgument(`page ${p.container}#${p.page}: staging offset ${p.stagingOffset} is used by another page`);
    slotTaken[slot] = 1;
    keys[i] = c * 2 ** 32 + p.page;
    if (i > 0 && keys[i]! <= keys[i - 1]!) ascending = false;
    table.containerIndex[i] = c;
    table.page[i] = p.page;
    table.dataOffset[i] = p.stagingOffset;
    table.version[i] = p.version;
  }
  table.originEpoch.fill(epoch);
  if (!ascending) keys.sort();
  for (let i = 1; i < keys.length && !ascending; i++) {
    if (keys[i] === keys[i - 1]) {
      throw invalidArgument(`page ${containers[Math.floor(keys[i]! / 2 ** 32)]}#${keys[i]! % 2 ** 32} appears twice in the part`);
    }
  }
  return table;
}
