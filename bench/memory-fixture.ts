// A node agent's page memory holding one job whose every page has just been
// written: the state a checkpoint round finds after a phase in which the
// application touched all of its memory.

import { performance } from 'node:perf_hooks';
import { PageMemory, PAGE_BYTES, type PageWriteOp } from '../src/node/memory/page-memory.js';
import { MemorySwap } from '../src/node/memory/swap-memory.js';
import { randomBytes } from './reference.js';

export const BENCH_JOB = 'bench';
export const BENCH_CONTAINER = 'heap';
const BATCH_PAGES = 1024;
/** Frames beyond the job's pages, so that nothing is ever evicted to swap. */
const BUDGET_MARGIN_BYTES = 64 * 1024 * 1024;
/** Source of page contents: random bytes read at a different offset for each page and round. */
const PATTERN_BYTES = 8 * 1024 * 1024;

export interface MemoryFixture {
  memory: PageMemory;
  swap: MemorySwap;
  pages: number;
  bytes: number;
}

export function createMemory(bytes: number): MemoryFixture {
  if (bytes % PAGE_BYTES !== 0) throw new Error(`size ${bytes} is not a multiple of ${PAGE_BYTES}`);
  const pages = bytes / PAGE_BYTES;
  const swap = new MemorySwap();
  const memory = new PageMemory(
    {
      nodeId: 'bench-node',
      budgetBytes: bytes + BUDGET_MARGIN_BYTES,
      maxContainersPerJob: 4,
      maxPagesPerContainer: Math.max(pages, 262_144),
      maxBatchWrites: BATCH_PAGES,
      maxBatchBytes: BATCH_PAGES * PAGE_BYTES,
    },
    swap,
  );
  memory.createContainer(BENCH_JOB, BENCH_CONTAINER, pages);
  return { memory, swap, pages, bytes };
}

let pattern: Uint8Array | null = null;

/**
 * Writes every page of the job in full (applyBatch with data ops), each page
 * with different non-constant bytes; `round` varies the contents between
 * rounds. Afterwards every page is changed. Returns the elapsed ms.
 */
export function dirtyAllPages(fx: MemoryFixture, round: number): number {
  pattern ??= randomBytes(PATTERN_BYTES + PAGE_BYTES, 0x2545f491);
  const span = PATTERN_BYTES / 4;
  const t0 = performance.now();
  for (let first = 0; first < fx.pages; first += BATCH_PAGES) {
    const writes: PageWriteOp[] = [];
    for (let page = first; page < Math.min(fx.pages, first + BATCH_PAGES); page += 1) {
      const at = (((page * 1031 + round * 7919) % span) * 4) >>> 0;
      writes.push({ container: BENCH_CONTAINER, page, offset: 0, op: { kind: 'data', data: pattern.subarray(at, at + PAGE_BYTES) } });
    }
    fx.memory.applyBatch(BENCH_JOB, writes);
  }
  const ms = performance.now() - t0;
  const [info] = fx.memory.containers(BENCH_JOB);
  if (info?.pagesChanged !== fx.pages) throw new Error(`after writing every page, ${info?.pagesChanged} of ${fx.pages} are changed`);
  const stats = fx.memory.stats();
  if (stats.pagesSwapped !== 0) throw new Error(`${stats.pagesSwapped} pages went to swap: the budget is too small`);
  return ms;
}
