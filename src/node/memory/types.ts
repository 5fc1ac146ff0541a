// The domain types of the node agent's page memory. They are re-exported by
// page-memory.ts, which is what other modules import.

export type PageCoherence = 'modified' | 'exclusive' | 'shared' | 'invalid';

export interface PageMemoryConfig {
  nodeId: string;
  /** Frames = floor(budgetBytes / PAGE_BYTES); fewer than 16 frames is rejected. */
  budgetBytes: number;
  maxContainersPerJob: number;
  maxPagesPerContainer: number;
  maxBatchWrites: number;
  maxBatchBytes: number;
}

export type PageOp = { kind: 'data'; data: Uint8Array } | { kind: 'add-i64'; delta: bigint };

export interface PageWriteOp {
  container: string;
  page: number;
  offset: number;
  op: PageOp;
}

export interface ContainerInfo {
  jobId: string;
  name: string;
  pageCount: number;
  pagesChanged: number;
}

export interface PageInfo {
  owner: string;
  state: PageCoherence;
  version: bigint;
  changed: boolean;
  where: 'resident' | 'swapped' | 'zero';
}

export interface SnapshotEntry {
  container: string;
  page: number;
  version: bigint;
  stagingOffset: number;
}

export interface Snapshot {
  staging: Uint8Array;
  /** Built on first read, so that the freeze window holds only the copy. */
  readonly entries: SnapshotEntry[];
  readonly pageCount: number;
  /** Swapped pages read straight from swap into staging (not swapped in). */
  pagesSwappedIn: number;
}

export interface MemoryStats {
  budgetBytes: number;
  framesTotal: number;
  framesUsed: number;
  /** Frames lent to a restore in progress (read into, not yet a page's). */
  framesLent: number;
  pagesTotal: number;
  pagesResident: number;
  pagesSwapped: number;
  swapOuts: number;
  swapIns: number;
}
