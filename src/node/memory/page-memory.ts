// Page memory of a node agent.
//
// Intuition: a job's containers are arrays of 4 KiB pages. A page that was
// never written is "zero" and costs nothing but its metadata. A page that is
// read or written gets a frame from a fixed budget (preallocated up front);
// when the budget is full, the least recently used frame is written to a swap
// slot and reused, and the page it held comes back on its next access. Each
// page carries a version (+1 per write or load), a coherence state, an owner,
// and a changed-since-last-epoch flag that the checkpoint snapshot clears.
// The metadata lives in typed arrays per container (page-table.ts), the frames
// and their LRU list in frames.ts/lru.ts, swap slots in swap-slots.ts; this
// file keeps them in step. It is a pure core: no node:* imports, no clock,
// and swap is reached only through the SwapPort it is given.
//
// Invariants (checkInvariants() verifies 1-4; tests check 5-7):
//  1. Every page is in exactly one place: zero (no frame, no slot, content all
//     zero), resident (exactly one frame, whose back-pointer names the page)
//     or swapped (exactly one swap slot, holding its content).
//  2. Frame accounting: a frame is either free (on the free stack once) or
//     bound to one page and in the LRU list; framesUsed = bound frames.
//  3. Swap slot accounting: every slot below the high-water mark is either on
//     the free list or holds exactly one swapped page.
//  4. Each container's pagesChanged equals its number of set changed flags.
//  5. Versions only grow: every applied write and every loadPage adds 1.
//  6. Bad input (a GridError) changes nothing. A swap I/O error propagates and
//     changes no content, version or flag: eviction writes the victim to swap
//     before repointing it; a failed swap-in leaves the page swapped; a batch
//     makes all its pages resident before the first write is applied; a
//     snapshot clears changed flags only after every page was copied.
//  7. A snapshot moves no page and does not touch the LRU order.

import { assert, invalidArgument, invariantBroken, notFound } from '../../common/errors.js';
import { checkName } from '../../common/names.js';
import { validateBatch, type ResolvedWrite } from './batch.js';
import { alreadyExists, checkPage, checkPageRun, checkRange, describeValue, resourceExhausted } from './checks.js';
import { FramePool } from './frames.js';
import { NONE } from './lru.js';
import { validateConfig } from './memory-config.js';
import { COHERENCE_NAMES, PageTable, STATE_EXCLUSIVE, STATE_MODIFIED } from './page-table.js';
import { allocBytes, copySnapshot, snapshotPageCount } from './snapshot.js';
import { PAGE_BYTES, type SwapPort } from './swap-port.js';
import { SwapSlots } from './swap-slots.js';
import type {
  ContainerInfo, MemoryStats, PageInfo, PageMemoryConfig, PageWriteOp, Snapshot, SnapshotEntry,
} from './types.js';

export { PAGE_BYTES } from './swap-port.js';
export type { SwapPort } from './swap-port.js';
export type {
  ContainerInfo, MemoryStats, PageCoherence, PageInfo, PageMemoryConfig, PageOp, PageWriteOp, Snapshot, SnapshotEntry,
} from './types.js';

export { MIN_FRAMES } from './memory-config.js';
export { FRAMES_PER_CHUNK } from './frames.js';

/** Table ids stay below this so (id, page) packs exactly into one number. */
const MAX_TABLES = 1 << 21;

export class PageMemory {
  private readonly config: PageMemoryConfig;
  private readonly swap: SwapPort;
  private readonly pool: FramePool;
  private readonly slots = new SwapSlots();
  /** Page tables by id (frame back-pointers use the id); undefined = free id. */
  private readonly tables: (PageTable | undefined)[] = [];
  private readonly freeTableIds: number[] = [];
  /** job -> container name -> table, both in creation order. */
  private readonly byJob = new Map<string, Map<string, PageTable>>();
  private pagesTotal = 0;
  private swapOuts = 0;
  private swapIns = 0;

  constructor(config: PageMemoryConfig, swap: SwapPort) {
    this.config = { ...validateConfig(config) };
    this.swap = swap;
    this.pool = new FramePool(Math.floor(config.budgetBytes / PAGE_BYTES));
  }

  // ---- containers ----------------------------------------------------------

  createContainer(jobId: string, name: string, pageCount: number): ContainerInfo {
    checkName('job', jobId);
    checkName('container', name);
    const max = this.config.maxPagesPerContainer;
    if (!Number.isSafeInteger(pageCount) || pageCount < 1 || pageCount > max) {
      throw invalidArgument(`bad page count ${describeValue(pageCount)} for container "${name}": expected 1 to ${max}`);
    }
    const job = this.byJob.get(jobId);
    if (job?.has(name)) throw alreadyExists(`container "${name}" of job "${jobId}" already exists`);
    const perJob = this.config.maxContainersPerJob;
    if (job !== undefined && job.size >= perJob) {
      throw resourceExhausted(`job "${jobId}" already has ${job.size} containers (maxContainersPerJob ${perJob})`);
    }
    const id = this.freeTableIds.length > 0 ? this.freeTableIds[this.freeTableIds.length - 1]! : this.tables.length;
    if (id >= MAX_TABLES) throw resourceExhausted(`too many containers on this node (${MAX_TABLES})`);
    const table = new PageTable(id, jobId, name, pageCount); // may throw RangeError: nothing changed yet
    if (id < this.tables.length) this.freeTableIds.pop();
    this.tables[id] = table;
    if (job === undefined) this.byJob.set(jobId, new Map([[name, table]]));
    else job.set(name, table);
    this.pagesTotal += pageCount;
    return table.info();
  }

  openContainer(jobId: string, name: string, expectedPageCount?: number): ContainerInfo {
    const table = this.lookup(jobId, name);
    if (expectedPageCount !== undefined && expectedPageCount !== 0 && expectedPageCount !== table.pageCount) {
      throw invalidArgument(
        `container "${name}" of job "${jobId}" has ${table.pageCount} pages, not ${describeValue(expectedPageCount)}`,
      );
    }
    return table.info();
  }

  hasContainer(jobId: string, name: string): boolean {
    return this.byJob.get(jobId)?.has(name) ?? false;
  }

  containers(jobId: string): ContainerInfo[] {
    return [...(this.byJob.get(jobId)?.values() ?? [])].map((t) => t.info());
  }

  /** Whether the job holds at least one container (one of jobs(), without building the list). */
  hasJob(jobId: string): boolean {
    return this.byJob.has(jobId);
  }

  /** Jobs that hold at least one container, in creation order. */
  jobs(): string[] {
    return [...this.byJob.keys()];
  }

  /** Frees every frame and swap slot of the job and forgets its containers. Unknown job: no-op. */
  dropJob(jobId: string): void {
    const job = this.byJob.get(jobId);
    if (job === undefined) return;
    for (const t of job.values()) {
      // Last page first: the free stack then hands the frames out again in page order, so a job restored
      // after it gets contiguous frames (one read and one CRC call per run, see restore-target.ts).
      for (let p = t.pageCount - 1; p >= 0; p -= 1) {
        const f = t.frame[p]!;
        if (f !== NONE) this.pool.release(f);
        const s = t.slot[p]!;
        if (s !== NONE) this.slots.give(s);
      }
      t.frame.fill(NONE);
      t.slot.fill(NONE);
      this.tables[t.id] = undefined;
      this.freeTableIds.push(t.id);
      this.pagesTotal -= t.pageCount;
    }
    this.byJob.delete(jobId);
  }

  // ---- reads ---------------------------------------------------------------

  /** A copy of `length` bytes at `offset` of one page, and the page's version. */
  read(jobId: string, container: string, page: number, offset: number, length: number): { data: Uint8Array; version: bigint } {
    const t = this.lookup(jobId, container);
    const p = checkPage(t, page);
    checkRange(offset, length);
    const version = BigInt(t.version[p]!);
    if (t.frame[p] === NONE && t.slot[p] === NONE) return { data: new Uint8Array(length), version };
    const f = this.makeResident(t, p, false);
    const at = this.pool.offsetOf(f) + offset;
    return { data: this.pool.chunkOf(f).slice(at, at + length), version };
  }

  /** A copy of `count` whole pages from `firstPage`. */
  readPages(jobId: string, container: string, firstPage: number, count: number): Uint8Array {
    const t = this.lookup(jobId, container);
    checkPageRun(t, firstPage, count);
    const out = allocBytes(count * PAGE_BYTES, `read of ${count} pages`);
    for (let i = 0; i < count; i += 1) {
      const p = firstPage + i;
      if (t.frame[p] === NONE && t.slot[p] === NONE) continue; // zero page: out is fresh zeros
      this.pool.copyRun(this.makeResident(t, p, false), 1, out, i * PAGE_BYTES);
    }
    return out;
  }

  pageInfo(jobId: string, container: string, page: number): PageInfo {
    const t = this.lookup(jobId, container);
    const p = checkPage(t, page);
    const where = t.frame[p] !== NONE ? 'resident' : t.slot[p] !== NONE ? 'swapped' : 'zero';
    return {
      owner: this.config.nodeId,
      state: COHERENCE_NAMES[t.state[p]!]!,
      version: BigInt(t.version[p]!),
      changed: t.changed[p] === 1,
      where,
    };
  }

  // ---- writes --------------------------------------------------------------

  /**
   * Applies every write or none. Validation of all writes comes first (bad
   * input changes nothing); then every touched page is made resident (the
   * only step that does swap I/O, so an I/O error also leaves contents
   * unchanged); then the writes are applied in order, each adding 1 to its
   * page's version.
   */
  applyBatch(jobId: string, writes: PageWriteOp[]): void {
    const batch = validateBatch(writes, (name) => this.lookup(jobId, name), {
      maxBatchWrites: this.config.maxBatchWrites,
      maxBatchBytes: this.config.maxBatchBytes,
      framesTotal: this.pool.total,
    });
    // Touching the k <= framesTotal pages in turn keeps them the k most recent,
    // so making a later one resident never evicts an earlier one.
    for (const { table, page } of batch.pages) this.makeResident(table, page, false);
    for (const { table, page } of batch.pages) {
      assert(table.frame[page] !== NONE, `batch page ${page} of "${table.name}" was evicted before its write`);
    }
    for (const w of batch.writes) this.applyWrite(w);
  }

  /** Restore: sets a page's content, changed=false, state exclusive, version+1. */
  loadPage(jobId: string, container: string, page: number, data: Uint8Array): void {
    const t = this.lookup(jobId, container);
    const p = checkPage(t, page);
    if (!(data instanceof Uint8Array) || data.length !== PAGE_BYTES) {
      const got = data instanceof Uint8Array ? `${data.length} bytes` : describeValue(data);
      throw invalidArgument(`loadPage of page ${p} of "${container}" needs exactly ${PAGE_BYTES} bytes, got ${got}`);
    }
    const f = this.makeResident(t, p, true);
    this.pool.chunkOf(f).set(data, this.pool.offsetOf(f));
    this.markLoaded(t, p);
  }

  // ---- restore in bulk ------------------------------------------------------
  // A restore reads pages straight into frames it borrows (lendFrame), checks
  // their bytes, then installs each one (installFrame): one read of the file
  // into memory, no copy, and nothing visible as a page before it is checked.

  /** The frame slab: frame f's bytes are frameChunks[f / FRAMES_PER_CHUNK] at (f % FRAMES_PER_CHUNK) * PAGE_BYTES. */
  get frameChunks(): readonly Uint8Array[] {
    return this.pool.chunkList;
  }

  /** A free frame lent to a restore, or NONE when none is free (lending never evicts: the caller copies instead). */
  lendFrame(): number {
    return this.pool.lend();
  }

  /** A lent frame that will not be installed. */
  returnFrame(frame: number): void {
    this.pool.takeBack(frame);
  }

  /** Restore: the lent frame's bytes become the page's content (as loadPage: changed=false, exclusive, version+1). */
  installFrame(jobId: string, container: string, page: number, frame: number): void {
    this.installFrames(jobId, container, page, 1, frame);
  }

  /**
   * installFrame for `count` consecutive pages from `firstPage`, held by the
   * lent frames from `firstFrame` on: one lookup and one check for the run
   * (a restore installs 262,144 pages per GiB). Checks everything before it
   * changes anything.
   */
  installFrames(jobId: string, container: string, firstPage: number, count: number, firstFrame: number): void {
    const t = this.lookup(jobId, container);
    checkPageRun(t, firstPage, count);
    for (let k = 0; k < count; k += 1) {
      const f = firstFrame + k;
      if (!(Number.isInteger(f) && f >= 0 && f < this.pool.total && this.pool.isLent(f))) invariantBroken(`frame ${f} is not lent`);
    }
    for (let k = 0; k < count; k += 1) {
      const p = firstPage + k;
      this.makeZero(t, p);
      t.frame[p] = firstFrame + k;
      this.pool.bind(firstFrame + k, t.id, p);
      this.markLoaded(t, p);
    }
  }

  /** Restore: the page's content is all zero (it takes no frame). */
  loadZeroPage(jobId: string, container: string, page: number): void {
    const t = this.lookup(jobId, container);
    const p = checkPage(t, page);
    this.makeZero(t, p);
    this.markLoaded(t, p);
  }

  // ---- checkpoint ----------------------------------------------------------

  /**
   * Copies the job's changed pages (or all of them) into one new staging
   * buffer and clears their changed flags. An unknown job gives an empty
   * snapshot (a node may take part in a round without holding containers).
   */
  /** Bytes a snapshot in this mode would copy now (to size a reusable staging buffer). */
  snapshotBytes(jobId: string, mode: 'changed' | 'full'): number {
    return snapshotPageCount([...(this.byJob.get(jobId)?.values() ?? [])], mode) * PAGE_BYTES;
  }

  /** Copies the job's changed (or all) pages; into `reuse` when it is large enough. */
  snapshot(jobId: string, mode: 'changed' | 'full', reuse?: Uint8Array): Snapshot {
    if (mode !== 'changed' && mode !== 'full') throw invalidArgument(`bad snapshot mode ${describeValue(mode)}`);
    const tables = [...(this.byJob.get(jobId)?.values() ?? [])];
    const result = copySnapshot(tables, mode, this.pool, this.swap, reuse);
    // Both modes copied every changed page, so every flag of the job clears.
    for (const t of tables) t.clearAllChanged();
    return result;
  }

  /** After a failed export: marks the snapshotted pages changed again. All entries are checked first. */
  restoreChanged(jobId: string, entries: SnapshotEntry[]): void {
    if (!Array.isArray(entries)) throw invalidArgument('restoreChanged needs an array of snapshot entries');
    const marks: { table: PageTable; page: number }[] = [];
    for (const e of entries) {
      if (typeof e !== 'object' || e === null) throw invalidArgument(`bad snapshot entry ${describeValue(e)}`);
      const table = this.lookup(jobId, e.container);
      marks.push({ table, page: checkPage(table, e.page) });
    }
    for (const { table, page } of marks) table.setChanged(page, true);
  }

  // ---- status --------------------------------------------------------------

  stats(): MemoryStats {
    return {
      budgetBytes: this.config.budgetBytes,
      framesTotal: this.pool.total,
      framesUsed: this.pool.used,
      framesLent: this.pool.lent,
      pagesTotal: this.pagesTotal,
      pagesResident: this.pool.used,
      pagesSwapped: this.slots.inUse,
      swapOuts: this.swapOuts,
      swapIns: this.swapIns,
    };
  }

  /** Throws on a broken invariant 1-4 (see the top of this file). O(frames + pages + slots). */
  checkInvariants(): void {
    this.pool.checkInvariants();
    const slotSeen = new Uint8Array(this.slots.extent);
    this.slots.markFree(slotSeen);
    let resident = 0;
    let swapped = 0;
    let pages = 0;
    let tableCount = 0;
    for (const [jobId, job] of this.byJob) {
      assert(job.size > 0, `job "${jobId}" is listed with no containers`);
      for (const [name, t] of job) {
        assert(this.tables[t.id] === t && t.jobId === jobId && t.name === name, `table ${t.id} is misfiled`);
        t.checkInvariants();
        tableCount += 1;
        pages += t.pageCount;
        for (let p = 0; p < t.pageCount; p += 1) {
          const f = t.frame[p]!;
          const s = t.slot[p]!;
          if (f !== NONE) {
            assert(f >= 0 && f < this.pool.total, `"${name}" page ${p}: bad frame ${f}`);
            assert(this.pool.ownerTable[f] === t.id && this.pool.ownerPage[f] === p,
              `"${name}" page ${p}: frame ${f} points back to table ${this.pool.ownerTable[f]} page ${this.pool.ownerPage[f]}`);
            resident += 1;
          }
          if (s !== NONE) {
            assert(s >= 0 && s < slotSeen.length, `"${name}" page ${p}: bad swap slot ${s}`);
            assert(slotSeen[s] === 0, `"${name}" page ${p}: swap slot ${s} is free or held by another page`);
            slotSeen[s] = 1;
            swapped += 1;
          }
        }
      }
    }
    assert(resident === this.pool.used, `${resident} resident pages but ${this.pool.used} frames bound`);
    assert(swapped === this.slots.inUse, `${swapped} swapped pages but ${this.slots.inUse} slots in use`);
    assert(slotSeen.every((b) => b === 1), 'a swap slot below the high-water mark is neither free nor used');
    assert(pages === this.pagesTotal, `${pages} pages in tables, pagesTotal says ${this.pagesTotal}`);
    const liveIds = this.tables.filter((t) => t !== undefined).length;
    assert(liveIds === tableCount && liveIds + this.freeTableIds.length === this.tables.length, 'table ids leaked');
  }

  // ---- internals -----------------------------------------------------------

  private lookup(jobId: string, name: string): PageTable {
    const table = this.byJob.get(jobId)?.get(name);
    if (table === undefined) throw notFound(`unknown container ${describeValue(name)} of job ${describeValue(jobId)}`);
    return table;
  }

  /** A restored page: version+1, not changed since the epoch it came from, exclusive. */
  private markLoaded(t: PageTable, p: number): void {
    t.bumpVersion(p);
    t.setChanged(p, false);
    t.state[p] = STATE_EXCLUSIVE;
  }

  /** Frees the page's frame or swap slot: its content becomes zero. */
  private makeZero(t: PageTable, p: number): void {
    const f = t.frame[p]!;
    if (f !== NONE) {
      this.pool.release(f);
      t.frame[p] = NONE;
    }
    const s = t.slot[p]!;
    if (s !== NONE) {
      this.slots.give(s);
      t.slot[p] = NONE;
    }
  }

  /**
   * Returns the page's frame, making it the most recently used. A zero page
   * gets a zeroed frame; a swapped page is read back (unless `overwrite`: the
   * caller replaces all of it) and its slot freed. An I/O error leaves the
   * page where it was.
   */
  private makeResident(t: PageTable, p: number, overwrite: boolean): number {
    const current = t.frame[p]!;
    if (current !== NONE) {
      this.pool.lru.touch(current);
      return current;
    }
    const f = this.acquireFrame();
    const s = t.slot[p]!;
    if (s !== NONE) {
      if (!overwrite) {
        try {
          this.swap.read(s, this.pool.view(f));
        } catch (e) {
          this.pool.giveBackUnbound(f);
          throw e;
        }
        this.swapIns += 1;
      }
      this.slots.give(s);
      t.slot[p] = NONE;
    } else if (!overwrite) {
      this.pool.view(f).fill(0);
    }
    t.frame[p] = f;
    this.pool.bind(f, t.id, p);
    return f;
  }

  /** A free, unbound frame: evicts the least recently used page when none is free. */
  private acquireFrame(): number {
    const free = this.pool.takeFree();
    if (free !== NONE) return free;
    this.evictOldest();
    const f = this.pool.takeFree();
    assert(f !== NONE, 'no free frame after an eviction');
    return f;
  }

  /** Writes the LRU page to a swap slot first, then repoints it, so a failed write changes nothing. */
  private evictOldest(): void {
    const victim = this.pool.lru.oldest();
    assert(victim !== NONE, 'eviction with no frame in use');
    const t = this.tables[this.pool.ownerTable[victim]!];
    const p = this.pool.ownerPage[victim]!;
    assert(t !== undefined && t.frame[p] === victim, `frame ${victim} has a stale back-pointer`);
    const s = this.slots.take();
    try {
      this.swap.write(s, this.pool.view(victim));
    } catch (e) {
      this.slots.give(s);
      throw e;
    }
    t.frame[p] = NONE;
    t.slot[p] = s;
    this.pool.release(victim);
    this.swapOuts += 1;
  }

  /** Applies one validated write to a page that makeResident already made resident. */
  private applyWrite(w: ResolvedWrite): void {
    const { table: t, page: p, offset, op } = w;
    const f = t.frame[p]!;
    assert(f !== NONE, `write to non-resident page ${p} of "${t.name}"`);
    const at = this.pool.offsetOf(f) + offset;
    switch (op.kind) {
      case 'data':
        this.pool.chunkOf(f).set(op.data, at);
        break;
      case 'add-i64': {
        const dv = this.pool.dataViewOf(f);
        dv.setBigInt64(at, BigInt.asIntN(64, dv.getBigInt64(at, true) + op.delta), true);
        break;
      }
      default: {
        const never: never = op;
        throw new Error(`unreachable write kind ${describeValue(never)}`);
      }
    }
    t.bumpVersion(p);
    t.setChanged(p, true);
    t.state[p] = STATE_MODIFIED;
  }
}
