// The physical references the benchmarks are compared with, measured in the
// same run and on the same machine: a raw sequential write + fsync of a
// buffer to a file, a raw sequential read of a file with one CRC32C pass, a
// memcpy into a freshly allocated buffer, and CRC32C over a buffer.

import { open } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { crc32c } from '@node-rs/crc32';

const PAGE = 4096;

/** `bytes` (a multiple of 4) pseudo-random bytes from xorshift32. */
export function randomBytes(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const words = new Uint32Array(out.buffer, 0, bytes >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i += 1) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return out;
}

export interface RawWriteTiming {
  totalMs: number;
  /** open + the writes (into the page cache, mostly). */
  writeMs: number;
  syncMs: number;
}

/**
 * The disk reference: creates/truncates `file`, writes `data` sequentially in
 * `chunkBytes` chunks (one write in flight at a time, looping on short
 * writes), fsyncs and closes it. totalMs runs from open to close.
 */
export async function rawWriteFsync(file: string, data: Uint8Array, chunkBytes: number): Promise<RawWriteTiming> {
  const t0 = performance.now();
  let tWritten = t0;
  let tSynced = t0;
  const fh = await open(file, 'w');
  try {
    for (let offset = 0; offset < data.byteLength; offset += chunkBytes) {
      const length = Math.min(chunkBytes, data.byteLength - offset);
      let done = 0;
      while (done < length) {
        const { bytesWritten } = await fh.write(data, offset + done, length - done, offset + done);
        if (bytesWritten <= 0) throw new Error(`write returned ${bytesWritten} bytes`);
        done += bytesWritten;
      }
    }
    tWritten = performance.now();
    await fh.sync();
    tSynced = performance.now();
  } finally {
    await fh.close();
  }
  return { totalMs: performance.now() - t0, writeMs: tWritten - t0, syncMs: tSynced - tWritten };
}

export interface RawReadTiming {
  totalMs: number;
  bytes: number;
  crc: number;
}

/**
 * The restore references: read `file` sequentially in `chunkBytes` chunks and
 * run CRC32C over each chunk as it arrives, one call per chunk. With a
 * `buffer` as large as the file ('image'), each chunk lands at its own place
 * and the whole file is in memory at the end, as a restore leaves it; with a
 * `buffer` of one chunk ('stream'), every chunk overwrites the last, so the
 * CRC reads bytes the kernel has just copied (cache-hot) and nothing is kept:
 * the least work that checks every byte. The buffer is touched before timing.
 * totalMs runs from open to close.
 */
export async function rawReadCrc(file: string, chunkBytes: number, buffer: Uint8Array): Promise<RawReadTiming> {
  if (buffer.byteLength < chunkBytes) throw new Error(`read buffer of ${buffer.byteLength} bytes, chunk ${chunkBytes}`);
  const t0 = performance.now();
  const fh = await open(file, 'r');
  let bytes = 0;
  let crc = 0;
  try {
    for (;;) {
      const at = bytes + chunkBytes <= buffer.byteLength ? bytes : 0;
      const { bytesRead } = await fh.read(buffer, at, chunkBytes, bytes);
      if (bytesRead === 0) break;
      crc = crc32c(buffer.subarray(at, at + bytesRead), crc);
      bytes += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return { totalMs: performance.now() - t0, bytes, crc };
}

/**
 * The memory reference: allocates a fresh zeroed destination the way the
 * snapshot allocates its staging buffer (new Uint8Array(n)) and copies `src`
 * into it with one Uint8Array.prototype.set. The time includes the
 * allocation, and with it the first-touch page faults of the destination,
 * exactly as the snapshot pays them.
 */
export function memcpyFresh(src: Uint8Array): number {
  const t0 = performance.now();
  const dst = new Uint8Array(src.byteLength);
  dst.set(src);
  const ms = performance.now() - t0;
  const last = src.byteLength - 1;
  if (dst[0] !== src[0] || dst[last] !== src[last]) throw new Error('memcpy reference copied the wrong bytes');
  return ms;
}

/** A memcpy of `src` into an existing destination of the same size (its pages already touched); returns ms. */
export function memcpyInto(src: Uint8Array, dst: Uint8Array): number {
  if (dst.byteLength !== src.byteLength) throw new Error(`memcpy destination has ${dst.byteLength} bytes, source ${src.byteLength}`);
  const t0 = performance.now();
  dst.set(src);
  const ms = performance.now() - t0;
  const last = src.byteLength - 1;
  if (dst[0] !== src[0] || dst[last] !== src[last]) throw new Error('memcpy copied the wrong bytes');
  return ms;
}

/** CRC32C of the whole buffer in one call; returns [ms, crc]. */
export function crcWhole(buf: Uint8Array): [number, number] {
  const t0 = performance.now();
  const crc = crc32c(buf);
  return [performance.now() - t0, crc];
}

/** CRC32C of every 4 KiB page, one call per page as the store's writer does; returns ms. */
export function crcPerPage(buf: Uint8Array): number {
  const t0 = performance.now();
  let acc = 0;
  for (let at = 0; at < buf.byteLength; at += PAGE) acc ^= crc32c(buf.subarray(at, at + PAGE));
  const ms = performance.now() - t0;
  if (acc === 0x7fffffff + 1) process.stdout.write(''); // keep acc alive
  return ms;
}

/** global.gc when node runs with --expose-gc; otherwise a no-op (large buffers are then freed by V8's own pressure heuristics). */
export function collectGarbage(): boolean {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') return false;
  gc();
  return true;
}
