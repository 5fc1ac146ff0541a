import type { EpochManifest, PartInfo } from '../store/index.js';

// What the agent's checkpoint steps answer (its API and Watch events).

export interface PrepareResult {
  epoch: bigint;
  pages: number;
  bytes: number;
  freezeWindowMs: number;
  /** The tableDigest commit's part will have (store/part-digest.ts); computed after the thaw. */
  digest: string;
  /** Every unit of the job had exited at the cut. */
  done: boolean;
  /** A read-only vote (no page staged): the part is durable already, as COMMIT would answer it; null otherwise. */
  readOnly: CommitResult | null;
}

export interface CommitResult {
  epoch: bigint;
  part: PartInfo;
  containers: Array<{ name: string; pageCount: number }>;
  writeMs: number;
}

/** A local checkpoint (ARCHITECTURE §4 on a single node). */
export interface CheckpointResult {
  manifest: EpochManifest;
  chainLength: number;
  freezeWindowMs: number;
  freezeMs: number;
  snapshotMs: number;
  thawMs: number;
  writeMs: number;
  pagesSwappedIn: number;
}
