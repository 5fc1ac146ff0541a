// The grid's plan after it lost clusters of a job. Pure.
// Every unit of a lost cluster moves, all together, to the alive cluster
// with the most room that fits them (so, like a node's units in a cluster,
// they are restored whole from one store). The whole job then rolls back to
// its last recovery line: each cluster restores its own units from its own
// store at the line's epoch, and the units whose pages the line keeps in
// another cluster's store (the moved ones) are adopted from that store.
// Without a line, every unit starts anew.

export interface GridRecoveryInput {
  /** unit → cluster, now. */
  clusters: ReadonlyMap<string, string>;
  lost: ReadonlySet<string>;
  line: { clusterEpochs: Readonly<Record<string, bigint>>; unitClusters: Readonly<Record<string, string>> } | null;
  /** Alive clusters (not lost) → units they have room for. */
  free: ReadonlyMap<string, number>;
  /** cluster → its store directory (lost ones included). */
  stores: ReadonlyMap<string, string>;
}

export interface Adopt {
  fromCluster: string;
  storeDir: string;
  epoch: bigint | null;
  unitIds: string[];
}

export interface ClusterRestore {
  units: string[];
  /** Its own units' epoch on the line; null starts them anew. */
  epoch: bigint | null;
  adopt: Adopt[];
}

export type GridRecoveryPlan =
  | { ok: true; target: string; moved: string[]; clusters: Map<string, string>; restores: Map<string, ClusterRestore> }
  | { ok: false; reason: string };

export function planGridRecovery(input: GridRecoveryInput): GridRecoveryPlan {
  const moved = [...input.clusters].filter(([, c]) => input.lost.has(c)).map(([u]) => u).sort();
  const lostNames = [...input.lost].sort().join(', ');
  const candidates = [...input.free].filter(([c, room]) => !input.lost.has(c) && room >= moved.length)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const target = candidates[0]?.[0];
  if (target === undefined) {
    const best = [...input.free].filter(([c]) => !input.lost.has(c)).sort((a, b) => b[1] - a[1])[0];
    const room = best ? `the most room is ${best[1]} on ${best[0]}` : 'no cluster is alive';
    return { ok: false, reason: `no alive cluster has room for the ${moved.length} units of lost cluster ${lostNames} (${room})` };
  }
  const clusters = new Map(input.clusters);
  for (const u of moved) clusters.set(u, target);

  const restores = new Map<string, ClusterRestore>();
  for (const [u, c] of [...clusters].sort((a, b) => a[0].localeCompare(b[0]))) {
    const r = restores.get(c) ?? { units: [], epoch: null, adopt: [] };
    restores.set(c, r);
    r.units.push(u);
    // Where this unit's pages are on the line (without a line: nowhere).
    const source = input.line ? (input.line.unitClusters[u] ?? input.clusters.get(u)!) : input.clusters.get(u)!;
    const epoch = input.line ? (input.line.clusterEpochs[source] ?? null) : null;
    if (source === c) {
      r.epoch = epoch;
      continue;
    }
    const storeDir = input.stores.get(source);
    if (storeDir === undefined) return { ok: false, reason: `the store of cluster ${source} (unit ${u}'s pages) is unknown` };
    let a = r.adopt.find((x) => x.fromCluster === source);
    if (!a) {
      a = { fromCluster: source, storeDir, epoch, unitIds: [] };
      r.adopt.push(a);
    }
    a.unitIds.push(u);
  }
  return { ok: true, target, moved, clusters, restores };
}
