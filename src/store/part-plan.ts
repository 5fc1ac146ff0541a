// A node's part as staged, before any byte of it is on disk: its page list
// validated (checkStagedPart: all the writer needs before its first write),
// its all-zero pages found (markZeroSlots, which the writer runs a chunk
// ahead of its writes), then laid out as the part's page table (planLayout),
// then the CRC32C of every page filled in (fillChecksums). The writer
// (epoch-writer.ts) and the prepared digest (part-digest.ts) both build the
// table here, so the table a participant PREPARED and the one it writes on
// COMMIT are the same function of the same staged pages.
// Invariants:
//   1. Row i of the table is pages[i]: rows keep the staged order (the agent
//      stages container then page order), never re-sorted.
//   2. A page list that does not exactly fill staging, names a page twice,
//      or shares a staging slot is refused (invalid-argument), naming the
//      page, by checkStagedPart: before anything is written.
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
const TWO_32 = 2 ** 32;

export interface PartPage { container: string; page: number; version: bigint; stagingOffset: number }

/** The staged pages of one part of one epoch. */
export interface StagedPart {
  epoch: bigint;
  /** Exactly pages.length x 4 KiB: every slot of it is one page of `pages`. */
  staging: Uint8Array;
  pages: PartPage[];
}

/** Zero checks per turn of the event loop (most pages cost one word read, see findZeroSlots). */
const ZERO_SLICE_PAGES = 16_384;
const ZERO_BUFFER = Buffer.from(ZERO_PAGE.buffer, ZERO_PAGE.byteOffset, PAGE_BYTES);
const WORDS_PER_PAGE = PAGE_BYTES / 4;

/** Which slots of staging are zero, and so what the data file holds (invariant 3). */
export interface StagingScan {
  /** 1 for each all-zero 4 KiB slot of staging. */
  zeroSlot: Uint8Array;
  dataBytes: number;
}

/** A part laid out for writing: its table, where each row's bytes are in staging, and what the data file holds. */
export interface PartLayout extends StagingScan {
  table: PageTable;
  /** Row i's bytes are staging[stagingOffset[i], + 4 KiB) (the table's dataOffset is its place in the data file). */
  stagingOffset: Float64Array;
  zeroPages: number;
}

/** scanStaging then planLayout: the whole layout at once (the prepared digest's path). */
export async function layOutPart(input: StagedPart): Promise<PartLayout> {
  return planLayout(input, await scanStaging(input));
}

/** Invariant 2's checks, then the zero slots (invariant 3), in slices that let the event loop turn. */
export async function scanStaging(input: StagedPart): Promise<StagingScan> {
  checkStagedPart(input);
  const slots = input.pages.length;
  const zeroSlot = new Uint8Array(slots);
  let dataBytes = 0;
  for (let start = 0; start < slots; start += ZERO_SLICE_PAGES) {
    dataBytes += markZeroSlots(input.staging, zeroSlot, start, Math.min(slots, start + ZERO_SLICE_PAGES));
    if (start + ZERO_SLICE_PAGES < slots) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return { zeroSlot, dataBytes };
}

/**
 * The page table of a checked part (fillChecksums fills in the CRCs). The
 * writer builds it while its data writes are in flight: a 1 GiB part's
 * columns are ~10 MB of fresh memory, whose first-touch faults alone cost
 * tens of ms on a VM.
 */
export function planLayout(input: StagedPart, scan: StagingScan): PartLayout {
  const { epoch, pages } = input;
  const containers: string[] = [];
  const containerIndex = new Map<string, number>();
  const table = allocatePageTable(epoch, containers, pages.length);
  const stagingOffset = new Float64Array(pages.length);
  const fileOffsetOfSlot = new Float64Array(pages.length);
  for (let s = 0, at = 0; s < pages.length; s++) {
    fileOffsetOfSlot[s] = at;
    if (!scan.zeroSlot[s]) at += PAGE_BYTES;
  }
  let lastName: string | null = null;
  let lastIndex = 0;
  let zeroPages = 0;
  for (let i = 0; i < pages.length; i++) {
    const p = pages[i]!;
    // Pages come container by container: one Map lookup per container, not per page.
    let c = p.container === lastName ? lastIndex : containerIndex.get(p.container);
    if (c === undefined) {
      c = containers.length;
      containerIndex.set(p.container, c);
      containers.push(p.container);
    }
    lastName = p.container;
    lastIndex = c;
    const slot = p.stagingOffset / PAGE_BYTES;
    table.containerIndex[i] = c;
    table.page[i] = p.page;
    table.version[i] = p.version;
    stagingOffset[i] = p.stagingOffset;
    if (scan.zeroSlot[slot]) {
      table.zero[i] = 1;
      zeroPages += 1;
    } else {
      table.dataOffset[i] = fileOffsetOfSlot[slot]!;
    }
  }
  table.originEpoch.fill(epoch);
  return { ...scan, table, stagingOffset, zeroPages };
}

/**
 * Sets zeroSlot[s] for each all-zero slot s in [from, to) of staging; returns
 * the data bytes of the others. The writer runs it on one chunk while the
 * previous chunk's write is in flight, so it stays off the export's critical
 * path; still, a page whose first word is not zero (nearly every page of
 * real data) costs one word read in JS, and only the rest get a whole-page
 * memcmp (a memcmp call for every page cost ~75 ms per GiB here).
 */
export function markZeroSlots(staging: Uint8Array, zeroSlot: Uint8Array, from: number, to: number): number {
  const view = Buffer.from(staging.buffer, staging.byteOffset, staging.byteLength);
  const words = staging.byteOffset % 4 === 0 ? new Int32Array(staging.buffer, staging.byteOffset, staging.byteLength >>> 2) : null;
  let dataBytes = 0;
  for (let s = from; s < to; s++) {
    if ((words !== null && words[s * WORDS_PER_PAGE] !== 0) || view.compare(ZERO_BUFFER, 0, PAGE_BYTES, s * PAGE_BYTES, (s + 1) * PAGE_BYTES) !== 0) {
      dataBytes += PAGE_BYTES;
    } else {
      zeroSlot[s] = 1;
    }
  }
  return dataBytes;
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

/** Invariant 2: refuses a page list that does not describe its staging one slot per page. */
export function checkStagedPart(input: StagedPart): void {
  const { epoch, pages, staging } = input;
  checkEpoch('epoch', epoch);
  if (!(staging instanceof Uint8Array)) throw invalidArgument('staging must be a Uint8Array');
  if (!Array.isArray(pages) || pages.length > 2 ** 32 - 1) throw invalidArgument('pages must be an array of at most 2^32-1 pages');
  if (staging.byteLength !== pages.length * PAGE_BYTES) {
    throw invalidArgument(
      `staging holds ${staging.byteLength} bytes but ${pages.length} pages need exactly ${pages.length * PAGE_BYTES}: pass the used part of the buffer`,
    );
  }
  const containerIndex = new Map<string, number>();
  const slotTaken = new Uint8Array(pages.length);
  let lastName: string | null = null;
  let lastIndex = 0;
  let lastKey = -1;
  let ascending = true; // the agent stages pages in container then page order: then no sort is needed
  for (let i = 0; i < pages.length; i++) {
    const p = pages[i]!;
    let c = p.container === lastName ? lastIndex : containerIndex.get(p.container);
    if (c === undefined) {
      c = containerIndex.size;
      containerIndex.set(checkName('container', p.container), c);
      if (containerIndex.size > MAX_CONTAINERS) throw invalidArgument(`part references more than ${MAX_CONTAINERS} containers`);
    }
    lastName = p.container;
    lastIndex = c;
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
    const key = c * TWO_32 + p.page;
    if (key <= lastKey) ascending = false;
    lastKey = key;
  }
  if (!ascending) checkNoPageTwice(pages, containerIndex);
}

/** The slow path of invariant 2 for a page list not in (container, page) order. */
function checkNoPageTwice(pages: readonly PartPage[], containerIndex: ReadonlyMap<string, number>): void {
  const keys = Float64Array.from(pages, (p) => containerIndex.get(p.container)! * TWO_32 + p.page).sort();
  const names = [...containerIndex.keys()];
  for (let i = 1; i < keys.length; i++) {
    if (keys[i] === keys[i - 1]) {
      throw invalidArgument(`page ${names[Math.floor(keys[i]! / TWO_32)]}#${keys[i]! % TWO_32} appears twice in the part`);
    }
  }
}
