// Reads chosen pages of one node part once, checks them against their CRCs
// run by run, and hands each checked page on (epoch-reader.ts: a restore or a
// verify). This is the restore's hot path: a 1 GiB part is 262,144 pages.
//
// Intuition: pages are read in file order in reads of at most READ_BYTES,
// straight into the memory the consumer lends (page frames) when it lends
// some, else into a scratch buffer; small gaps between wanted pages are read
// into a discard buffer rather than split into more reads. While read k+1 is
// in flight on the I/O pool, read k is checked here: each stretch of it that
// is contiguous in memory gets one native CRC32C call, compared with the
// combination of its pages' CRCs (page-crc.ts); a large stretch in shared
// memory (the page frames) is split, its first half checked on a worker
// thread meanwhile (crc-offload.ts). Only when every page of a read has
// passed is any page of it handed on.
// Invariants:
//   1. No page is handed on (`checked`, `checkedRun`) before its bytes were compared with
//      its CRC, nor before every page of its read was; a page that fails is
//      reported (`mismatch`, which may throw) and never handed on.
//   2. Every lent address is either handed on or released, and only once no
//      read into it is in flight (part-stream never leaves I/O running).
//   3. Memory: at most two reads in flight; scratch at most 2 x READ_BYTES,
//      plus one MAX_READ_GAP_BYTES discard buffer.
//   4. A data file shorter than the pages it must hold is data-loss naming
//      where it ends.

import { open, type FileHandle } from 'node:fs/promises';
import { crc32c } from '@node-rs/crc32';
import { GridError } from '../common/errors.js';
import { canOffload, crcElsewhere } from './crc-offload.js';
import { PAGE_BYTES } from './layout.js';
import { runCrc } from './page-crc.js';
import type { OpenedPart } from './part-reader.js';

/** Bytes of file per read: two in flight bound the scratch a copying consumer needs. */
export const READ_BYTES = 16 * 1024 * 1024;
/** Pages closer than this are read with the gap in between: one larger read beats many 4 KiB ones. */
const MAX_READ_GAP_BYTES = 256 * 1024;
/** Linux's IOV_MAX: libuv passes at most this many buffers to one preadv. */
const MAX_IOVECS = 1024;

const GAP = Buffer.allocUnsafe(MAX_READ_GAP_BYTES); // what gaps are read into: never looked at

/** What a stream does with the pages it reads. */
export interface StreamConsumer {
  /** Lent memory (see load-target.ts); empty when the consumer lends none. */
  regions: readonly Uint8Array[];
  regionBytes: number;
  /** Where to read this entry: an address in regions, or -1 for scratch. */
  place(entry: number): number;
  /** The entry's bytes passed their CRC check, in scratch: `data`, valid only during the call (address -1). */
  checked(entry: number, address: -1, data: Uint8Array): void;
  /** entries[from..to) passed their CRC checks, read at consecutive lent addresses from `address`. */
  checkedRun(from: number, to: number, address: number): void;
  /** The entry's bytes hash to `got`, not its CRC: may throw; if it returns, the page is skipped. */
  mismatch(entry: number, got: number): void;
  /** A lent address that will not be handed on. */
  release(address: number): void;
}

interface Read {
  position: number;
  bytes: number;
  iovecs: Uint8Array[];
  /** entries[from..to) are this read's pages, in file order. */
  from: number;
  to: number;
  /** Per page: its lent address (>= 0), or -1 - its offset in scratch. */
  where: Float64Array;
  scratch: Uint8Array | null;
  /** Pages [0, handedOn) went to the consumer; the rest are released on failure. */
  handedOn: number;
  io: Promise<void>;
}

/** Streams `entries` (sorted by data offset, none a zero page) of `opened` to `consumer` (invariants 1-4). */
export async function streamPart(opened: OpenedPart, entries: ArrayLike<number>, consumer: StreamConsumer): Promise<void> {
  if (entries.length === 0) return;
  const fh = await open(opened.dataPath, 'r');
  const stream = new PartStream(opened, entries, consumer, fh);
  try {
    await stream.run();
  } finally {
    await stream.settle();
    await fh.close();
  }
}

class PartStream {
  private readonly offsets: Float64Array;
  private readonly scratch: Array<Uint8Array | null> = [null, null];
  private readonly inFlight: Read[] = [];
  private next = 0;
  private reads = 0;

  constructor(
    private readonly opened: OpenedPart,
    private readonly entries: ArrayLike<number>,
    private readonly consumer: StreamConsumer,
    private readonly fh: FileHandle,
  ) {
    this.offsets = opened.table.dataOffset;
  }

  async run(): Promise<void> {
    this.issue();
    while (this.inFlight.length > 0) {
      const read = this.inFlight[0]!;
      await read.io;
      this.issue(); // the next read runs on the I/O pool while this one is checked
      await this.checkAndHandOn(read);
      this.inFlight.shift();
    }
  }

  /** After a failure: waits for reads in flight and releases what they placed and did not hand on. */
  async settle(): Promise<void> {
    for (const read of this.inFlight) {
      await read.io.catch(() => undefined);
      for (let k = read.handedOn; k < read.to - read.from; k++) if (read.where[k]! >= 0) this.consumer.release(read.where[k]!);
    }
    this.inFlight.length = 0;
  }

  private issue(): void {
    if (this.next >= this.entries.length) return;
    const read = this.plan(this.next);
    this.next = read.to;
    this.inFlight.push(read);
    read.io = readFully(this.fh, read, this.opened);
    read.io.catch(() => undefined); // awaited in run or settle
  }

  /** The next read from entries[from]: contiguous-enough pages, each placed in lent memory or scratch. */
  private plan(from: number): Read {
    const { entries, offsets, consumer } = this;
    const position = offsets[entries[from]!]!;
    const maxPages = Math.min(entries.length - from, READ_BYTES / PAGE_BYTES);
    const read: Read = { position, bytes: 0, iovecs: [], from, to: from, where: new Float64Array(maxPages), scratch: null, handedOn: 0, io: Promise.resolve() };
    let end = position;
    let scratchUsed = 0;
    let span: { buf: Uint8Array; start: number; end: number } | null = null;
    const close = (): void => {
      if (span) read.iovecs.push(span.buf.subarray(span.start, span.end));
      span = null;
    };
    for (let i = from; i < from + maxPages; i++) {
      const offset = offsets[entries[i]!]!;
      const gap = offset - end;
      if (i > from && (gap < 0 || gap > MAX_READ_GAP_BYTES || offset + PAGE_BYTES - position > READ_BYTES || read.iovecs.length + 3 > MAX_IOVECS)) break;
      if (gap > 0) {
        close();
        read.iovecs.push(GAP.subarray(0, gap));
      }
      const address = consumer.place(entries[i]!);
      let buf: Uint8Array;
      let at: number;
      if (address >= 0) {
        buf = consumer.regions[Math.floor(address / consumer.regionBytes)]!;
        at = address % consumer.regionBytes;
        read.where[i - from] = address;
      } else {
        read.scratch ??= this.scratchFor(this.reads);
        buf = read.scratch;
        at = scratchUsed;
        read.where[i - from] = -1 - scratchUsed;
        scratchUsed += PAGE_BYTES;
      }
      const current = span as { buf: Uint8Array; start: number; end: number } | null;
      if (current !== null && current.buf === buf && current.end === at) current.end += PAGE_BYTES;
      else {
        close();
        span = { buf, start: at, end: at + PAGE_BYTES };
      }
      end = offset + PAGE_BYTES;
      read.to = i + 1;
    }
    close();
    read.bytes = end - position;
    this.reads += 1;
    return read;
  }

  private scratchFor(k: number): Uint8Array {
    const slot = k % 2;
    this.scratch[slot] ??= Buffer.allocUnsafe(Math.min(READ_BYTES, Math.max(PAGE_BYTES, this.opened.part.dataBytes)));
    return this.scratch[slot]!;
  }

  /**
   * Invariant 1: every stretch of the read checked, then its good pages handed on in file order. A large stretch
   * in shared memory is checked in two halves at once, the first on a worker thread (crc-offload.ts).
   */
  private async checkAndHandOn(read: Read): Promise<void> {
    const { entries, consumer } = this;
    const crcs = this.opened.table.crc32c;
    const n = read.to - read.from;
    const bad = new Uint8Array(n);
    const pieces: Array<[number, number, Promise<number> | number]> = [];
    for (let first = 0; first < n; ) {
      let last = first + 1;
      while (last < n && read.where[last]! === read.where[last - 1]! + (read.where[last]! >= 0 ? PAGE_BYTES : -PAGE_BYTES) && this.sameBuffer(read, last - 1, last)) last++;
      const mid = first + ((last - first) >> 1);
      if (mid > first && canOffload(this.bytesOf(read, first, mid))) {
        pieces.push([first, mid, crcElsewhere(this.bytesOf(read, first, mid))]);
        pieces.push([mid, last, crc32c(this.bytesOf(read, mid, last))]);
      } else {
        pieces.push([first, last, crc32c(this.bytesOf(read, first, last))]);
      }
      first = last;
    }
    // Every piece answered before any is judged: a consumer's mismatch may throw, and no worker may still be
    // reading frames that are then released (invariant 2).
    const got = await Promise.all(pieces.map((p) => p[2]));
    for (let i = 0; i < pieces.length; i++) {
      const [first, last] = pieces[i]!;
      if (got[i] === runCrc(crcs, entries, read.from + first, read.from + last)) continue;
      for (let k = first; k < last; k++) {
        const page = crc32c(this.bytesOf(read, k, k + 1));
        if (page !== crcs[entries[read.from + k]!]) {
          bad[k] = 1;
          consumer.mismatch(entries[read.from + k]!, page);
        }
      }
    }
    for (let k = 0; k < n; ) {
      const where = read.where[k]!;
      if (bad[k] || where < 0) {
        read.handedOn = k + 1; // counted first: a consumer that throws has taken (or dropped) this page
        if (bad[k]) {
          if (where >= 0) consumer.release(where);
        } else {
          consumer.checked(entries[read.from + k]!, -1, this.bytesOf(read, k, k + 1));
        }
        k += 1;
        continue;
      }
      // Lent pages at consecutive addresses go on together: the consumer installs a run at a time.
      let end = k + 1;
      while (end < n && !bad[end] && read.where[end] === read.where[end - 1]! + PAGE_BYTES) end++;
      read.handedOn = end; // as above: a run the consumer throws on is its to install or give back
      consumer.checkedRun(read.from + k, read.from + end, where);
      k = end;
    }
  }

  /** Pages k and k + 1 of a read lie in one region (or both in scratch). */
  private sameBuffer(read: Read, a: number, b: number): boolean {
    const wa = read.where[a]!;
    const wb = read.where[b]!;
    if (wa < 0 || wb < 0) return wa < 0 && wb < 0;
    const size = this.consumer.regionBytes;
    return Math.floor(wa / size) === Math.floor(wb / size);
  }

  /** The bytes of pages [first, last) of a read, which lie contiguously in one buffer. */
  private bytesOf(read: Read, first: number, last: number): Uint8Array {
    const where = read.where[first]!;
    if (where < 0) {
      const at = -1 - where;
      return read.scratch!.subarray(at, at + (last - first) * PAGE_BYTES);
    }
    const size = this.consumer.regionBytes;
    const at = where % size;
    return this.consumer.regions[Math.floor(where / size)]!.subarray(at, at + (last - first) * PAGE_BYTES);
  }
}

/** preadv of a read's buffers, looping on short reads; a file that ends early is data-loss (invariant 4). */
async function readFully(fh: FileHandle, read: Read, opened: OpenedPart): Promise<void> {
  let buffers = read.iovecs;
  for (let done = 0; done < read.bytes; ) {
    const { bytesRead } = await fh.readv(buffers, read.position + done);
    if (bytesRead === 0) {
      throw new GridError('data-loss', `epoch ${opened.epoch}: ${opened.dataPath}: ends at ${read.position + done}, expected data up to ${read.position + read.bytes}`);
    }
    done += bytesRead;
    buffers = skipBytes(buffers, bytesRead);
  }
}

function skipBytes(buffers: Uint8Array[], bytes: number): Uint8Array[] {
  let left = bytes;
  let i = 0;
  while (i < buffers.length && left >= buffers[i]!.byteLength) left -= buffers[i++]!.byteLength;
  const rest = buffers.slice(i);
  if (left > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(left);
  return rest;
}
