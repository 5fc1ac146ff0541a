// How many recovery lines the grid keeps per job: the grid walks back at most
// this far, and a cluster's garbage collection keeps at least this many of a
// grid-managed job's epochs (src/cluster/core/retention.ts) because it cannot
// see the grid's catalog. One constant for both tiers, so they cannot disagree.
export const GRID_KEEP_LINES = 8;
