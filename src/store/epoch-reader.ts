// Restores and verifies committed epochs (ARCHITECTURE §3 invariants 3 and 6,
// §5: restoring epoch E takes each page from the newest epoch <= E of E's
// chain that holds it).
// Invariants:
//   1. loadEpoch calls the sink for no page until every table and file size of
//      the chain has been checked and every page it will deliver has been read
//      and its CRC32C matched: a corrupt image loads nothing.
//      It does so in two streaming passes (verify, then deliver) through one
//      reused IO_CHUNK_BYTES buffer per part instead of holding the image in
//      memory: the agent restores into its own budgeted frames, and first-touch
//      of a fresh image-sized buffer measured ~20x slower than the reads here.
//      The deliver pass checks every CRC again, so a file altered between the
//      passes is still caught (then after some pages were delivered: the caller
//      drops a job whose restore failed).
//   2. The sink is called once per (container, page) that some epoch of the
//      chain holds and that E's manifest still lists (a container E no longer
//      lists, or a page beyond its pageCount in E, is not delivered), with the
//      content from the newest epoch holding it; part by part, newest epoch
//      first, in file order within a part.
//   3. One page in two parts of the same epoch is data loss (one owner, §3.1).
//   4. verifyEpoch never stops at the first problem: it checks every page of
//      every epoch of the chain and reports up to MAX_REPORTED_ERRORS errors.

import { stat } from 'node:fs/promises';
import { crc32c } from '@node-rs/crc32';
import { GridError } from '../common/errors.js';
import { isErrno } from '../runtime/durable-fs.js';
import { epochChain } from './epoch-catalog.js';
import { PAGE_BYTES, epochDir } from './layout.js';
import type { EpochManifest } from './manifest.js';
import { crcMismatch, dataSizeError, openPart, pageLabel, sortByOffset, streamPages, type OpenedPart } from './part-reader.js';

export interface LoadResult { pagesLoaded: number; chain: EpochManifest[] }
export interface VerifyResult { ok: boolean; epoch: bigint; pagesChecked: number; errors: string[] }
export type PageSink = (container: string, page: number, data: Uint8Array) => void;

export const MAX_REPORTED_ERRORS = 100;
const ENTRY_SPAN = 2 ** 32; // packs (part index, entry) and (container index, page) into one safe integer

/**
 * Restores `epoch` into `sink`. `data` is a view into a reused read buffer,
 * valid only during the call: the sink copies what it keeps.
 */
export interface LoadOptions {
  /** Only the parts written by these nodes (a node restoring what it, or a failed node it replaces, held). */
  parts?: ReadonlySet<string>;
}

export async function loadEpoch(storeDir: string, jobId: string, epoch: bigint, sink: PageSink, options: LoadOptions = {}): Promise<LoadResult> {
  const chain = await epochChain(storeDir, jobId, epoch);
  const parts: OpenedPart[] = [];
  const partRank: number[] = [];
  for (const [rank, manifest] of chain.entries()) {
    const dir = epochDir(storeDir, jobId, manifest.epoch);
    for (const info of manifest.parts) {
      if (options.parts && !options.parts.has(info.nodeId)) continue;
      const opened = await openPart(dir, manifest, info);
      const sizeError = await dataSizeError(opened);
      if (sizeError !== null) throw new GridError('data-loss', sizeError);
      parts.push(opened);
      partRank.push(rank);
    }
  }
  const used: number[][] = parts.map(() => []);
  for (const packed of composeChain(chain[0]!, parts, partRank).values()) used[Math.floor(packed / ENTRY_SPAN)]!.push(packed % ENTRY_SPAN);
  for (const [p, opened] of parts.entries()) sortByOffset(opened, used[p]!);

  const checkCrc = (opened: OpenedPart) => (entry: number, page: Uint8Array): void => {
    const got = crc32c(page);
    if (got !== opened.table.crc32c[entry]) throw new GridError('data-loss', crcMismatch(opened, entry, got));
  };
  for (const [p, opened] of parts.entries()) await streamPages(opened, used[p]!, checkCrc(opened));
  let pagesLoaded = 0;
  for (const [p, opened] of parts.entries()) {
    const check = checkCrc(opened);
    const t = opened.table;
    await streamPages(opened, used[p]!, (entry, page) => {
      check(entry, page);
      sink(t.containers[t.containerIndex[entry]!]!, t.page[entry]!, page);
      pagesLoaded += 1;
    });
  }
  return { pagesLoaded, chain };
}

/** Maps (E's container index, page) -> (part index, entry) of the newest epoch that holds the page. */
function composeChain(target: EpochManifest, parts: OpenedPart[], partRank: number[]): Map<number, number> {
  const targetIndex = new Map(target.containers.map((c, i) => [c.name, i]));
  const selected = new Map<number, number>();
  for (const [p, opened] of parts.entries()) {
    const t = opened.table;
    const toTarget = t.containers.map((name) => targetIndex.get(name));
    for (let i = 0; i < t.count; i++) {
      const c = toTarget[t.containerIndex[i]!];
      if (c === undefined || t.page[i]! >= target.containers[c]!.pageCount) continue;
      const key = c * ENTRY_SPAN + t.page[i]!;
      const held = selected.get(key);
      if (held === undefined) {
        selected.set(key, p * ENTRY_SPAN + i);
      } else if (partRank[Math.floor(held / ENTRY_SPAN)] === partRank[p]) {
        const other = parts[Math.floor(held / ENTRY_SPAN)]!;
        throw new GridError('data-loss', `epoch ${opened.epoch}: ${pageLabel(opened, i)} of ${opened.dataPath} is also in ${other.dataPath}`);
      }
    }
  }
  return selected;
}

class ErrorList {
  private readonly kept: string[] = [];
  private dropped = 0;
  add(message: string): void {
    if (this.kept.length < MAX_REPORTED_ERRORS) this.kept.push(message);
    else this.dropped += 1;
  }
  get count(): number {
    return this.kept.length + this.dropped;
  }
  list(): string[] {
    return this.dropped === 0 ? [...this.kept] : [...this.kept, `... and ${this.dropped} more errors`];
  }
}

/** Checks every page of every epoch in the chain; not-found when `epoch` is not committed. */
export async function verifyEpoch(storeDir: string, jobId: string, epoch: bigint): Promise<VerifyResult> {
  const errors = new ErrorList();
  let chain: EpochManifest[];
  try {
    chain = await epochChain(storeDir, jobId, epoch);
  } catch (err) {
    if (err instanceof GridError && err.kind === 'data-loss') return { ok: false, epoch, pagesChecked: 0, errors: [err.message] };
    throw err;
  }
  let pagesChecked = 0;
  for (const manifest of chain) {
    const dir = epochDir(storeDir, jobId, manifest.epoch);
    const owner = new Map<string, string>();
    for (const info of manifest.parts) {
      let opened: OpenedPart;
      try {
        opened = await openPart(dir, manifest, info);
      } catch (err) {
        if (!(err instanceof GridError)) throw err;
        errors.add(err.message);
        continue;
      }
      checkOwners(opened, owner, errors);
      const sizeError = await dataSizeError(opened);
      if (sizeError !== null) errors.add(sizeError);
      pagesChecked += await checkAllPages(opened, errors);
    }
  }
  return { ok: errors.count === 0, epoch, pagesChecked, errors: errors.list() };
}

function checkOwners(opened: OpenedPart, owner: Map<string, string>, errors: ErrorList): void {
  const t = opened.table;
  for (let i = 0; i < t.count; i++) {
    const key = `${t.containers[t.containerIndex[i]!]}#${t.page[i]}`;
    const other = owner.get(key);
    if (other !== undefined) errors.add(`epoch ${opened.epoch}: ${pageLabel(opened, i)} of ${opened.dataPath} is also in ${other}`);
    else owner.set(key, opened.dataPath);
  }
}

/** Checks the CRC of every entry that lies inside the data file; returns how many were checked. */
async function checkAllPages(opened: OpenedPart, errors: ErrorList): Promise<number> {
  const t = opened.table;
  let size: number;
  try {
    size = (await stat(opened.dataPath)).size;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 0; // dataSizeError reported it
    throw err;
  }
  // Pages cut off by a short file were reported by dataSizeError.
  const inside = sortByOffset(opened, Array.from({ length: t.count }, (_, i) => i).filter((i) => t.zero[i] || t.dataOffset[i]! + PAGE_BYTES <= size));
  await streamPages(opened, inside, (entry, page) => {
    const got = crc32c(page);
    if (got !== t.crc32c[entry]) errors.add(crcMismatch(opened, entry, got));
  });
  return inside.length;
}
