// Restores and verifies committed epochs (ARCHITECTURE §3 invariants 3 and 6,
// §5: restoring epoch E takes each page from the newest epoch <= E of E's
// chain that holds it).
// Invariants:
//   1. loadInto hands the target no page until every table and file size of
//      the chain has been checked, and no page before its CRC32C, and that of
//      every page read with it (up to READ_BYTES), has matched
//      (part-stream.ts). Each part is read once, straight into the memory the
//      target lends. A corrupt page fails the load after the pages of earlier
//      reads may have been handed on: the caller discards what it was given
//      (the agent drops a job whose restore failed, restore-runner.ts). (It
//      read every part twice before, verify then deliver, so that a corrupt
//      image delivered nothing: 1.5-1.8 s per cached GiB against 0.5 s.)
//   2. The target gets each (container, page) once that some epoch of the
//      chain holds and that E's manifest still lists (a container E no longer
//      lists, or a page beyond its pageCount in E, is not delivered), with the
//      content from the newest epoch holding it; part by part, newest epoch
//      first, a part's zero pages first, then its other pages in file order.
//   3. One page in two parts of the same epoch is data loss (one owner, §3.1).
//   4. verifyEpoch never stops at the first problem: it checks every page of
//      every epoch of the chain and reports up to MAX_REPORTED_ERRORS errors.

import { stat } from 'node:fs/promises';
import { GridError } from '../common/errors.js';
import { isErrno } from '../runtime/durable-fs.js';
import { epochChain } from './epoch-catalog.js';
import { PAGE_BYTES, epochDir } from './layout.js';
import { sinkTarget, type LoadTarget, type PageSink } from './load-target.js';
import type { EpochManifest } from './manifest.js';
import { ZERO_PAGE, type PageTable } from './page-table.js';
import { crcMismatch, dataSizeError, hasFiles, openPart, pageLabel, sortByOffset, type OpenedPart } from './part-reader.js';
import { streamPart } from './part-stream.js';

export interface LoadResult { pagesLoaded: number; chain: EpochManifest[] }
export interface VerifyResult { ok: boolean; epoch: bigint; pagesChecked: number; errors: string[] }
export type { LoadTarget, PageSink } from './load-target.js';

export const MAX_REPORTED_ERRORS = 100;

export interface LoadOptions {
  /** Only the parts written by these nodes (a node restoring what it, or a failed node it replaces, held). */
  parts?: ReadonlySet<string>;
}

/**
 * Restores `epoch` into `sink`, one call per page. `data` is a view into a
 * reused read buffer, valid only during the call: the sink copies what it keeps.
 */
export async function loadEpoch(storeDir: string, jobId: string, epoch: bigint, sink: PageSink, options: LoadOptions = {}): Promise<LoadResult> {
  return loadInto(storeDir, jobId, epoch, sinkTarget(sink, ZERO_PAGE), options);
}

/** Restores `epoch` into `target` (invariants 1-3). */
export async function loadInto(storeDir: string, jobId: string, epoch: bigint, target: LoadTarget, options: LoadOptions = {}): Promise<LoadResult> {
  const chain = await epochChain(storeDir, jobId, epoch);
  const parts: OpenedPart[] = [];
  const partRank: number[] = [];
  for (const [rank, manifest] of chain.entries()) {
    const dir = epochDir(storeDir, jobId, manifest.epoch);
    for (const info of manifest.parts) {
      if ((options.parts && !options.parts.has(info.nodeId)) || !hasFiles(info)) continue;
      const opened = await openPart(dir, manifest, info);
      const sizeError = await dataSizeError(opened);
      if (sizeError !== null) throw new GridError('data-loss', sizeError);
      parts.push(opened);
      partRank.push(rank);
    }
  }
  const used = composeChain(chain[0]!, parts, partRank);
  let pagesLoaded = 0;
  for (const [p, opened] of parts.entries()) {
    const t = opened.table;
    const nameOf = (entry: number): string => t.containers[t.containerIndex[entry]!]!;
    const { zero, data } = used[p]!;
    for (const entry of zero) target.zero(nameOf(entry), t.page[entry]!); // its CRC was checked with the table (page-table.ts)
    pagesLoaded += zero.length;
    const entries = sortByOffset(opened, data);
    await streamPart(opened, entries, {
      regions: target.regions,
      regionBytes: target.regionBytes,
      place: (entry) => target.place(nameOf(entry), t.page[entry]!),
      checked: (entry, _address, bytes) => {
        target.copy(nameOf(entry), t.page[entry]!, bytes);
        pagesLoaded += 1;
      },
      checkedRun: (from, to, address) => {
        // Split into runs of one container's consecutive pages (a full epoch: the whole read).
        for (let k = from; k < to; ) {
          const first = entries[k]!;
          let end = k + 1;
          while (end < to && t.containerIndex[entries[end]!] === t.containerIndex[first] && t.page[entries[end]!] === t.page[first]! + (end - k)) end++;
          target.installRun(nameOf(first), t.page[first]!, end - k, address + (k - from) * PAGE_BYTES);
          pagesLoaded += end - k;
          k = end;
        }
      },
      mismatch: (entry, got) => {
        throw new GridError('data-loss', crcMismatch(opened, entry, got));
      },
      release: (address) => target.release(address),
    });
  }
  return { pagesLoaded, chain };
}

interface Taken { zero: number[]; data: Uint32Array | number[] }

/** The entries of each part that the restore of E takes (invariant 2), its zero pages apart, in table order. */
function composeChain(target: EpochManifest, parts: OpenedPart[], partRank: number[]): Taken[] {
  // One part, of E itself (a full epoch on one node): openPart checked that its entries name E's containers
  // below their page counts, each page once, so it is taken whole, without the holders below.
  if (parts.length === 1 && partRank[0] === 0) return [splitZero(parts[0]!.table)];
  const targetIndex = new Map(target.containers.map((c, i) => [c.name, i]));
  const holders = new Holders(target.containers.map((c) => c.pageCount), parts.reduce((n, o) => n + o.table.count, 0));
  return parts.map((opened, p) => {
    const t = opened.table;
    const taken = { zero: [] as number[], data: [] as number[] };
    const toTarget = t.containers.map((name) => targetIndex.get(name));
    for (let i = 0; i < t.count; i++) {
      const c = toTarget[t.containerIndex[i]!];
      const page = t.page[i]!;
      if (c === undefined || page >= target.containers[c]!.pageCount) continue;
      const held = holders.get(c, page);
      if (held === 0) {
        holders.set(c, page, p + 1);
        (t.zero[i] ? taken.zero : taken.data).push(i);
      } else if (partRank[held - 1] === partRank[p]) {
        const other = parts[held - 1]!;
        throw new GridError('data-loss', `epoch ${opened.epoch}: ${pageLabel(opened, i)} of ${opened.dataPath} is also in ${other.dataPath}`);
      }
    }
    return taken;
  });
}

function splitZero(t: PageTable): Taken {
  const zero: number[] = [];
  const data = new Uint32Array(t.count);
  let n = 0;
  for (let i = 0; i < t.count; i++) {
    if (t.zero[i]) zero.push(i);
    else data[n++] = i;
  }
  return { zero, data: data.subarray(0, n) };
}

/**
 * Which part (index + 1; 0: none yet) holds each page of E's containers: an
 * array per container unless it is much larger than the chain's pages (a
 * Map of 262,144 number keys cost ~90 ms per GiB restored).
 */
class Holders {
  private readonly dense: Array<Int32Array | null>;
  private readonly sparse: Array<Map<number, number> | null>;

  constructor(pageCounts: number[], chainPages: number) {
    const denseUpTo = 4 * chainPages + 65_536;
    this.dense = pageCounts.map((n) => (n <= denseUpTo ? new Int32Array(n) : null));
    this.sparse = pageCounts.map((n) => (n <= denseUpTo ? null : new Map()));
  }

  get(c: number, page: number): number {
    return this.dense[c]?.[page] ?? this.sparse[c]!.get(page) ?? 0;
  }

  set(c: number, page: number, holder: number): void {
    const d = this.dense[c];
    if (d) d[page] = holder;
    else this.sparse[c]!.set(page, holder);
  }
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
    for (const info of manifest.parts.filter(hasFiles)) {
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
  // Pages cut off by a short file were reported by dataSizeError; zero pages were checked with the table.
  let zeroPages = 0;
  const inside: number[] = [];
  for (let i = 0; i < t.count; i++) {
    if (t.zero[i]) zeroPages += 1;
    else if (t.dataOffset[i]! + PAGE_BYTES <= size) inside.push(i);
  }
  await streamPart(opened, sortByOffset(opened, inside), {
    regions: [],
    regionBytes: 1,
    place: () => -1,
    checked: () => undefined,
    checkedRun: () => undefined, // nothing is lent
    mismatch: (entry, got) => errors.add(crcMismatch(opened, entry, got)),
    release: () => undefined,
  });
  return zeroPages + inside.length;
}
