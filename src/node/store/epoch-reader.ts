// Restores and verifies committed epochs (ARCHITECTURE §3 invariants 3 and 6,
// §5: restoring epoch E takes each page from the newest epoch <= E of E's
// chain that holds it).
// Invariants:
//   1. loadEpoch delivers nothing until every page it will deliver has been
//      read and its CRC32C matched, and every table and file size of the chain
//      has been checked: a corrupt image loads no page at all.
//   2. The sink is called once per (container, page) that some epoch of the
//      chain holds and that E's manifest still lists (a container E no longer
//      lists, or a page beyond its pageCount in E, is not delivered), with the
//      content from the newest epoch holding it, in E's container order then
//      page order.
//   3. One page in two parts of the same epoch is data loss (one owner, §3.1).
//   4. verifyEpoch never stops at the first problem: it checks every page of
//      every epoch of the chain and reports up to MAX_REPORTED_ERRORS errors.

import { open } from 'node:fs/promises';
import { crc32c } from '@node-rs/crc32';
import { GridError } from '../../common/errors.js';
import { isErrno } from './durable-fs.js';
import { epochChain } from './epoch-catalog.js';
import { IO_CHUNK_BYTES, PAGE_BYTES, epochDir } from './layout.js';
import type { EpochManifest } from './manifest.js';
import { crcMismatch, dataSizeError, openPart, pageLabel, readExactly, type OpenedPart } from './part-reader.js';

export interface LoadResult { pagesLoaded: number; chain: EpochManifest[] }
export interface VerifyResult { ok: boolean; epoch: bigint; pagesChecked: number; errors: string[] }
export type PageSink = (container: string, page: number, data: Uint8Array) => void;

export const MAX_REPORTED_ERRORS = 100;
const ENTRY_SPAN = 2 ** 32; // packs (part index, entry) and (container index, page) into one safe integer

/**
 * Restores `epoch` into `sink`. Holds every delivered page in memory at once
 * (the restored image's size) so that nothing is delivered before all is
 * verified. `data` is a view into that memory: copy it if you keep it.
 */
export async function loadEpoch(storeDir: string, jobId: string, epoch: bigint, sink: PageSink): Promise<LoadResult> {
  const chain = await epochChain(storeDir, jobId, epoch);
  const parts: OpenedPart[] = [];
  const partRank: number[] = [];
  for (const [rank, manifest] of chain.entries()) {
    const dir = epochDir(storeDir, jobId, manifest.epoch);
    for (const info of manifest.parts) {
      const opened = await openPart(dir, manifest, info);
      const sizeError = await dataSizeError(opened);
      if (sizeError !== null) throw new GridError('data-loss', sizeError);
      parts.push(opened);
      partRank.push(rank);
    }
  }
  const selected = composeChain(chain[0]!, parts, partRank);
  const used: number[][] = parts.map(() => []);
  for (const packed of selected.values()) used[Math.floor(packed / ENTRY_SPAN)]!.push(packed % ENTRY_SPAN);
  const loaded: Array<{ data: Uint8Array; position: Int32Array }> = [];
  for (const [p, opened] of parts.entries()) loaded.push(await readVerifiedPages(opened, used[p]!));

  const keys = Float64Array.from(selected.keys()).sort();
  const containers = chain[0]!.containers;
  for (const key of keys) {
    const packed = selected.get(key)!;
    const p = Math.floor(packed / ENTRY_SPAN);
    const { data, position } = loaded[p]!;
    const at = position[packed % ENTRY_SPAN]! * PAGE_BYTES;
    sink(containers[Math.floor(key / ENTRY_SPAN)]!.name, key % ENTRY_SPAN, data.subarray(at, at + PAGE_BYTES));
  }
  return { pagesLoaded: keys.length, chain };
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

/** Reads the given entries of a part into one buffer (coalescing adjacent pages) and checks their CRCs. */
async function readVerifiedPages(opened: OpenedPart, entries: number[]): Promise<{ data: Uint8Array; position: Int32Array }> {
  const t = opened.table;
  entries.sort((a, b) => t.dataOffset[a]! - t.dataOffset[b]!);
  const data = Buffer.allocUnsafe(entries.length * PAGE_BYTES);
  const position = new Int32Array(t.count).fill(-1);
  const reads: Array<{ offset: number; length: number; position: number }> = [];
  for (const [k, entry] of entries.entries()) {
    position[entry] = k;
    const last = reads[reads.length - 1];
    const fileAt = t.dataOffset[entry]!;
    if (last !== undefined && last.position + last.length === fileAt && last.length < IO_CHUNK_BYTES) {
      last.length += PAGE_BYTES;
    } else {
      reads.push({ offset: k * PAGE_BYTES, length: PAGE_BYTES, position: fileAt });
    }
  }
  if (entries.length > 0) await readExactly(opened.dataPath, reads, data, opened.epoch);
  for (const [k, entry] of entries.entries()) {
    const got = crc32c(data.subarray(k * PAGE_BYTES, (k + 1) * PAGE_BYTES));
    if (got !== t.crc32c[entry]) throw new GridError('data-loss', crcMismatch(opened, entry, got));
  }
  return { data, position };
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

/** Streams the data file in chunks and checks the CRC of every entry inside it; returns how many were checked. */
async function checkAllPages(opened: OpenedPart, errors: ErrorList): Promise<number> {
  const t = opened.table;
  const order = Array.from({ length: t.count }, (_, i) => i).sort((a, b) => t.dataOffset[a]! - t.dataOffset[b]!);
  let fh;
  try {
    fh = await open(opened.dataPath, 'r');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 0; // dataSizeError reported it
    throw err;
  }
  let checked = 0;
  try {
    const chunk = Buffer.allocUnsafe(Math.min(IO_CHUNK_BYTES, Math.max(PAGE_BYTES, opened.part.dataBytes)));
    let next = 0;
    for (let start = 0; next < order.length; start += chunk.byteLength) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.byteLength, start);
      const end = start + bytesRead;
      for (; next < order.length && t.dataOffset[order[next]!]! + PAGE_BYTES <= end; next++) {
        const entry = order[next]!;
        const at = t.dataOffset[entry]! - start;
        const got = crc32c(chunk.subarray(at, at + PAGE_BYTES));
        if (got !== t.crc32c[entry]) errors.add(crcMismatch(opened, entry, got));
        checked += 1;
      }
      if (bytesRead < chunk.byteLength) break; // end of file: later pages were reported as cut off
    }
  } finally {
    await fh.close();
  }
  return checked;
}
