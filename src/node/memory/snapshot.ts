import { assert } from '../../common/errors.js';
import { resourceExhausted } from './checks.js';
import type { FramePool } from './frames.js';
import { NONE } from './lru.js';
import type { PageTable } from './page-table.js';
import { PAGE_BYTES, type SwapPort } from './swap-port.js';
import type { Snapshot, SnapshotEntry } from './types.js';

// The copy at the heart of the freeze window: the selected pages of a job
// into ONE new staging buffer, in table order then page order. Resident pages
// that sit in consecutive frames of one chunk are copied as one run (one
// memcpy), which is what keeps this close to raw memcpy speed. Swapped pages
// are read from swap straight into their staging slice — not swapped in, the
// LRU is not touched. This function changes no state; the caller clears the
// changed flags once it has returned (so a swap read error changes nothing).

/**
 * BigInts for small versions, made once: a snapshot of a 1 GiB container
 * builds 262,144 entries inside the freeze window, and most versions are small.
 */
const SMALL_VERSIONS = 4096;
const smallVersions: readonly bigint[] = Array.from({ length: SMALL_VERSIONS }, (_, i) => BigInt(i));

function versionOf(v: number): bigint {
  return v < SMALL_VERSIONS ? smallVersions[v]! : BigInt(v);
}

/** Allocates a zeroed buffer, turning an impossible size into a GridError. */
export function allocBytes(bytes: number, what: string): Uint8Array {
  try {
    return new Uint8Array(bytes);
  } catch (e) {
    if (e instanceof RangeError) {
      throw resourceExhausted(`${what} of ${bytes} bytes cannot be allocated (${e.message})`);
    }
    throw e;
  }
}

export function snapshotPageCount(tables: readonly PageTable[], mode: 'changed' | 'full'): number {
  let count = 0;
  for (const t of tables) count += mode === 'changed' ? t.changedCount : t.pageCount;
  return count;
}

/**
 * `reuse`, when large enough, becomes the staging (a view of its first
 * bytes): memory the caller touched before the freeze, so the copy takes no
 * page faults inside the window (a fresh GiB faults for seconds on a VM).
 */
export function copySnapshot(
  tables: readonly PageTable[],
  mode: 'changed' | 'full',
  pool: FramePool,
  swap: SwapPort,
  reuse?: Uint8Array,
): Snapshot {
  const onlyChanged = mode === 'changed';
  const count = snapshotPageCount(tables, mode);
  const bytes = count * PAGE_BYTES;
  const staging = reuse && reuse.length >= bytes
    ? reuse.subarray(0, bytes)
    : allocBytes(bytes, `snapshot staging for ${count} pages`);
  // Inside the window only numbers are recorded; entry objects come later.
  assert(tables.length <= 0xffff, `snapshot of ${tables.length} containers exceeds the 16-bit table index`);
  const tableOf = new Uint16Array(count);
  const pageOf = new Uint32Array(count);
  const versions = new Float64Array(count);
  let n = 0;
  let pagesSwappedIn = 0;
  let runFirst = NONE;
  let runLen = 0;
  let runDst = 0;
  let off = 0;
  for (let ti = 0; ti < tables.length; ti += 1) {
    const t = tables[ti]!;
    const { frame, slot, changed, version } = t;
    for (let p = 0; p < t.pageCount; p += 1) {
      if (onlyChanged && changed[p] === 0) continue;
      const f = frame[p]!;
      if (f !== NONE && runLen > 0 && f === runFirst + runLen && pool.sameChunk(runFirst, f)) {
        runLen += 1;
      } else {
        if (runLen > 0) pool.copyRun(runFirst, runLen, staging, runDst);
        runLen = 0;
        if (f !== NONE) {
          runFirst = f;
          runLen = 1;
          runDst = off;
        } else if (slot[p] !== NONE) {
          swap.read(slot[p]!, staging.subarray(off, off + PAGE_BYTES));
          pagesSwappedIn += 1;
        } else {
          staging.fill(0, off, off + PAGE_BYTES);
        }
      }
      tableOf[n] = ti;
      pageOf[n] = p;
      versions[n] = version[p]!;
      n += 1;
      off += PAGE_BYTES;
    }
  }
  if (runLen > 0) pool.copyRun(runFirst, runLen, staging, runDst);
  assert(off === staging.length, `snapshot copied ${off} bytes into ${staging.length} of staging`);
  const names = tables.map((t) => t.name);
  let entries: SnapshotEntry[] | null = null;
  return {
    staging,
    pagesSwappedIn,
    pageCount: count,
    get entries(): SnapshotEntry[] {
      entries ??= Array.from({ length: count }, (_, i) => ({
        container: names[tableOf[i]!]!,
        page: pageOf[i]!,
        version: versionOf(versions[i]!),
        stagingOffset: i * PAGE_BYTES,
      }));
      return entries;
    },
  };
}
