import { assert, invariantBroken } from '../../common/errors.js';
import { LruList, NONE } from './lru.js';
import { PAGE_BYTES } from './swap-port.js';

// The frame pool: the memory budget preallocated as a slab of 4 KiB frames,
// cut into 64 MiB chunks (one huge typed array would cap the budget and
// fragment badly). Each frame is free (on the free stack), in use (bound to
// one container page, and in the LRU list), or lent to a restore that reads
// a page straight into it and binds it once the bytes are checked (no page
// yet: not in the LRU, never evicted). Back-pointers (table id, page) let
// eviction find the page that owns the least recently used frame.

const CHUNK_SHIFT = 14;
export const FRAMES_PER_CHUNK = 1 << CHUNK_SHIFT; // 64 MiB of frames
const CHUNK_MASK = FRAMES_PER_CHUNK - 1;

export class FramePool {
  readonly total: number;
  readonly lru: LruList;
  /** Page table id owning each frame, NONE when the frame is not bound. */
  readonly ownerTable: Int32Array;
  readonly ownerPage: Int32Array;
  private readonly chunks: Uint8Array[] = [];
  private readonly views: DataView[] = [];
  private readonly freeStack: Int32Array;
  private freeCount: number;
  /** 1 for a frame lent to a restore (see lend). */
  private readonly lentFlag: Uint8Array;
  private lentCount = 0;

  constructor(frames: number) {
    assert(Number.isSafeInteger(frames) && frames > 0 && frames <= 0x7fffffff, `bad frame count ${frames}`);
    this.total = frames;
    for (let first = 0; first < frames; first += FRAMES_PER_CHUNK) {
      // Shared: a restore checks frames' CRCs on a worker thread too, in place (store/crc-offload.ts).
      const chunk = new Uint8Array(new SharedArrayBuffer(Math.min(FRAMES_PER_CHUNK, frames - first) * PAGE_BYTES));
      this.chunks.push(chunk);
      this.views.push(new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    }
    this.lru = new LruList(frames);
    this.ownerTable = new Int32Array(frames).fill(NONE);
    this.ownerPage = new Int32Array(frames).fill(NONE);
    // Free stack: pop gives frame 0 first, so sequential writes get sequential frames.
    this.freeStack = new Int32Array(frames);
    for (let i = 0; i < frames; i += 1) this.freeStack[i] = frames - 1 - i;
    this.freeCount = frames;
    this.lentFlag = new Uint8Array(frames);
  }

  /** Frames bound to a page. */
  get used(): number {
    return this.total - this.freeCount - this.lentCount;
  }

  get lent(): number {
    return this.lentCount;
  }

  /** The chunks, in frame order: frame f is bytes [(f % FRAMES_PER_CHUNK) * PAGE_BYTES, + PAGE_BYTES) of chunk f / FRAMES_PER_CHUNK. */
  get chunkList(): readonly Uint8Array[] {
    return this.chunks;
  }

  chunkOf(frame: number): Uint8Array {
    return this.chunks[frame >>> CHUNK_SHIFT]!;
  }

  dataViewOf(frame: number): DataView {
    return this.views[frame >>> CHUNK_SHIFT]!;
  }

  /** Byte offset of the frame inside its chunk (and its DataView). */
  offsetOf(frame: number): number {
    return (frame & CHUNK_MASK) * PAGE_BYTES;
  }

  view(frame: number): Uint8Array {
    const off = this.offsetOf(frame);
    return this.chunkOf(frame).subarray(off, off + PAGE_BYTES);
  }

  /** True when frames a..b are consecutive in one chunk, so one memcpy covers them. */
  sameChunk(a: number, b: number): boolean {
    return a >>> CHUNK_SHIFT === b >>> CHUNK_SHIFT;
  }

  /** Copies `count` consecutive frames of one chunk into dst at dstOffset. */
  copyRun(first: number, count: number, dst: Uint8Array, dstOffset: number): void {
    const off = this.offsetOf(first);
    dst.set(this.chunkOf(first).subarray(off, off + count * PAGE_BYTES), dstOffset);
  }

  /** Pops a free frame (not yet bound, not in the LRU), or NONE. */
  takeFree(): number {
    if (this.freeCount === 0) return NONE;
    this.freeCount -= 1;
    return this.freeStack[this.freeCount]!;
  }

  /** Gives back a frame from takeFree that was never bound (e.g. a swap-in that failed). */
  giveBackUnbound(frame: number): void {
    if (this.ownerTable[frame] !== NONE || this.lru.has(frame)) invariantBroken(`frame ${frame} is bound`);
    this.freeStack[this.freeCount] = frame;
    this.freeCount += 1;
  }

  /** A free frame lent to a restore (neither free nor bound until bind or takeBack), or NONE when none is free. */
  lend(): number {
    const f = this.takeFree();
    if (f === NONE) return NONE;
    this.lentFlag[f] = 1;
    this.lentCount += 1;
    return f;
  }

  isLent(frame: number): boolean {
    return this.lentFlag[frame] === 1;
  }

  /** A lent frame that will not be bound goes back to the free stack. */
  takeBack(frame: number): void {
    if (this.lentFlag[frame] !== 1) invariantBroken(`frame ${frame} is not lent`);
    this.lentFlag[frame] = 0;
    this.lentCount -= 1;
    this.giveBackUnbound(frame);
  }

  /** Binds a frame from takeFree (or a lent one) to a page, as the most recently used. */
  bind(frame: number, tableId: number, page: number): void {
    if (this.ownerTable[frame] !== NONE) invariantBroken(`frame ${frame} is already bound`);
    if (this.lentFlag[frame] === 1) {
      this.lentFlag[frame] = 0;
      this.lentCount -= 1;
    }
    this.ownerTable[frame] = tableId;
    this.ownerPage[frame] = page;
    this.lru.pushFront(frame);
  }

  /** Unbinds a frame and returns it to the free stack. */
  release(frame: number): void {
    if (this.ownerTable[frame] === NONE) invariantBroken(`frame ${frame} is not bound`);
    this.lru.remove(frame);
    this.ownerTable[frame] = NONE;
    this.ownerPage[frame] = NONE;
    this.freeStack[this.freeCount] = frame;
    this.freeCount += 1;
  }

  /**
   * Checks frame accounting: free frames are distinct and unbound, every bound
   * frame is in the LRU and vice versa, every other frame is lent, and the
   * counts add up. O(frames).
   */
  checkInvariants(): void {
    this.lru.checkInvariants();
    const isFree = new Uint8Array(this.total);
    for (let i = 0; i < this.freeCount; i += 1) {
      const f = this.freeStack[i]!;
      assert(f >= 0 && f < this.total, `free stack holds bad frame ${f}`);
      assert(isFree[f] === 0, `frame ${f} is on the free stack twice`);
      isFree[f] = 1;
    }
    let bound = 0;
    for (let f = 0; f < this.total; f += 1) {
      const isBound = this.ownerTable[f] !== NONE;
      assert(isBound === this.lru.has(f), `frame ${f}: bound=${isBound} but in LRU=${this.lru.has(f)}`);
      assert(!(isBound && isFree[f] === 1), `frame ${f} is both bound and free`);
      assert(this.lentFlag[f] === 0 || (!isBound && isFree[f] === 0), `frame ${f} is lent and also bound or free`);
      assert(isBound || isFree[f] === 1 || this.lentFlag[f] === 1, `frame ${f} is neither bound nor free nor lent (leaked)`);
      if (isBound) bound += 1;
    }
    assert(bound === this.used, `${bound} bound frames, ${this.used} in use by the count`);
  }
}
