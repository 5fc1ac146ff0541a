// The directory of a job's shared pages: Li & Hudak's fixed distributed
// manager. Pages are cut into ranges of rangePages; range r is managed by
// members[r mod n] of the job's sorted node list, so every node computes
// every page's manager with no lookup, and one manager serializes all
// requests for a page. The manager's entries (owner, copyset) are exact:
// it changes them only when the requester confirms (done).
//
// When a node dies the cluster coordinator rebuilds the directory for a new
// epoch from what the nodes that remain hold after the restore (their
// reports), with the managers recomputed over the new member list; every
// message carries the directory epoch, so an older one is dropped.
//
// This file is shared by the node (managerOf) and the cluster (rebuild).

export interface DirectoryLayout {
  /** Bumped on every rebuild; messages of another epoch are fenced. */
  epoch: number;
  /** The job's nodes in this epoch, sorted. */
  members: readonly string[];
  rangePages: number;
  pageCount: number;
}

export interface DirectoryEntry {
  page: number;
  owner: string;
}

/** What one node reports holding as owner (after a restore, or when asked). */
export interface HoldingReport {
  node: string;
  pages: readonly number[];
}

export function managerOf(layout: DirectoryLayout, page: number): string {
  if (!Number.isSafeInteger(page) || page < 0 || page >= layout.pageCount) throw new RangeError(`page ${page} outside 0..${layout.pageCount - 1}`);
  const n = layout.members.length;
  if (n === 0) throw new RangeError('a directory with no members');
  return layout.members[Math.floor(page / layout.rangePages) % n]!;
}

export function checkLayout(layout: DirectoryLayout): void {
  if (!Number.isSafeInteger(layout.rangePages) || layout.rangePages < 1) throw new RangeError(`rangePages ${layout.rangePages}`);
  if (!Number.isSafeInteger(layout.pageCount) || layout.pageCount < 0) throw new RangeError(`pageCount ${layout.pageCount}`);
  const sorted = [...layout.members].sort();
  if (sorted.some((m, i) => m !== layout.members[i] || (i > 0 && m === sorted[i - 1]))) throw new RangeError(`members must be sorted and distinct: ${layout.members.join(',')}`);
}

/**
 * The directory slices, one per member, from the members' holding reports.
 * Throws unless every page has exactly one owner among the members: a
 * rebuild never guesses (a page nobody holds is restored first).
 */
export function buildDirectory(layout: DirectoryLayout, reports: readonly HoldingReport[]): Map<string, DirectoryEntry[]> {
  checkLayout(layout);
  const owner: (string | undefined)[] = new Array<string | undefined>(layout.pageCount);
  for (const r of reports) {
    if (!layout.members.includes(r.node)) throw new Error(`report from ${r.node}, not a member of epoch ${layout.epoch}`);
    for (const p of r.pages) {
      if (owner[p] !== undefined) throw new Error(`page ${p} reported by both ${owner[p]} and ${r.node}`);
      owner[p] = r.node;
    }
  }
  const slices = new Map<string, DirectoryEntry[]>(layout.members.map((m) => [m, []]));
  for (let p = 0; p < layout.pageCount; p++) {
    const o = owner[p];
    if (o === undefined) throw new Error(`page ${p} has no owner in the reports of epoch ${layout.epoch}`);
    slices.get(managerOf(layout, p))!.push({ page: p, owner: o });
  }
  return slices;
}
