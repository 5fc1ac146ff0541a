// The digest of a node's part: the sha256 of its encoded page table, which
// lists every page in the order written with its container, page number,
// offset, CRC32C, version and epoch. The writer records it in PartInfo as
// `tableDigest` (and the reader checks the table file against it); a
// participant computes the same value from its staging after the thaw and
// answers it with PREPARED, so the coordinator can check that the part it is
// given on DURABLE is the snapshot that was prepared (round.ts invariant 10).
// Invariants:
//   1. stagedPartDigest(p) === writeNodePart({...p, ...}).tableDigest for the
//      same epoch, pages and staging bytes: both are digestPageTable of
//      layOutPart + fillChecksums (part-plan.ts); nothing else goes in.
//   2. It never runs inside the freeze window: its cost (CRC32C of every
//      staged byte, then sha256 of 36 bytes a page) is paid after the thaw,
//      in slices that let the agent's event loop turn.
//   3. A part of no pages has an empty table, never written (epoch-writer.ts
//      invariant 5): its digest is EMPTY_PART_DIGEST, the sha256 of no bytes.

import { sha256Hex } from './manifest.js';
import { encodePageTable, type PageTable } from './page-table.js';
import { fillChecksums, layOutPart, type StagedPart } from './part-plan.js';

/** The digest of a part of no pages: the sha256 of no bytes (invariant 3). */
export const EMPTY_PART_DIGEST = sha256Hex(new Uint8Array(0));

/** A table with its checksums filled in, encoded, and the sha256 hex of that encoding. */
export function digestPageTable(table: PageTable): { tableBytes: Uint8Array; tableDigest: string } {
  if (table.count === 0) return { tableBytes: new Uint8Array(0), tableDigest: EMPTY_PART_DIGEST };
  const tableBytes = encodePageTable(table);
  return { tableBytes, tableDigest: sha256Hex(tableBytes) };
}

/** The tableDigest that writeNodePart will record for these staged pages. */
export async function stagedPartDigest(part: StagedPart): Promise<string> {
  const layout = await layOutPart(part);
  await fillChecksums(layout, part.staging);
  return digestPageTable(layout.table).tableDigest;
}
