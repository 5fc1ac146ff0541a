import type { SeededRng } from '../runtime/rng.js';
import type { OperatorKind } from './operator.js';

// Fault schedules: drawn from the seed, so a seed names its whole run. Each
// fault is an instant and what happens then; a fault that ends (a restart, a
// heal, the end of a pause) names how long it lasts. The schedule keeps a
// spare: at most one cluster is down at a time, so a recovery always has
// somewhere to go and a failed job is a bug, not bad luck.

export type FaultKind =
  | 'agent-crash' | 'agent-crash-pair' | 'cluster-crash' | 'grid-crash'
  | 'partition-agent' | 'partition-cluster'
  | 'pause-agent' | 'pause-cluster' | 'pause-grid'
  | 'enospc' | 'eio' | 'corrupt-newest'
  // With three grid coordinators over the simulated etcd (--ha): the leader dies (and restarts as a standby
  // later), or is cut off from etcd while its calls to the clusters are held back, to arrive after a standby
  // took over (a deposed leader's late messages).
  | 'leader-crash' | 'leader-isolated';

export interface Fault {
  atMs: number;
  kind: FaultKind;
  /** The member it hits (an agent, a cluster, or 'grid'). */
  target: string;
  /** Until restart / heal / resume; for disk faults, how many writes fail. */
  durationMs: number;
  count: number;
}

export interface Topology {
  clusters: string[];
  agents: Map<string, string[]>;
}

const KINDS: Array<[FaultKind, number]> = [
  ['agent-crash', 5], ['agent-crash-pair', 2], ['cluster-crash', 2], ['grid-crash', 2], ['partition-agent', 3], ['partition-cluster', 2],
  ['pause-agent', 2], ['pause-cluster', 2], ['pause-grid', 1], ['enospc', 2], ['eio', 1], ['corrupt-newest', 2],
];

const HA_KINDS: Array<[FaultKind, number]> = [['leader-crash', 3], ['leader-isolated', 3]];

function pick(rng: SeededRng, ha: boolean): FaultKind {
  const kinds = ha ? [...KINDS, ...HA_KINDS] : KINDS;
  const total = kinds.reduce((a, [, w]) => a + w, 0);
  let r = rng.int(total);
  for (const [k, w] of kinds) {
    if (r < w) return k;
    r -= w;
  }
  return 'agent-crash';
}

/** A named scenario's shape: fault kinds, how many, and how long each lasts. */
export interface FaultShape {
  kinds?: FaultKind[];
  /** An operator's job control among the faults (operator.ts): these scripts, 1 or 2 of them. */
  operator?: OperatorKind[];
  count?: number;
  durationMs?: { min: number; max: number };
  /** Three grid coordinators electing a leader through the simulated etcd (also drawn: the leader's faults). */
  ha?: boolean;
}

export function drawFaults(rng: SeededRng, topo: Topology, windowMs: { fromMs: number; toMs: number }, shape: FaultShape = {}): Fault[] {
  const only = shape.kinds;
  const n = shape.count ?? 1 + rng.int(4);
  const span = shape.durationMs ?? { min: 100, max: 1500 };
  const out: Fault[] = [];
  let clusterDownUntil = -1;
  for (let i = 0; i < n; i++) {
    const atMs = windowMs.fromMs + rng.int(windowMs.toMs - windowMs.fromMs);
    let kind = only ? only[rng.int(only.length)]! : pick(rng, shape.ha ?? false);
    const cluster = topo.clusters[rng.int(topo.clusters.length)]!;
    const agents = topo.agents.get(cluster)!;
    const agent = agents[rng.int(agents.length)]!;
    const durationMs = span.min + rng.int(span.max - span.min);
    const takesClusterAway = (k: FaultKind): boolean => k === 'cluster-crash' || k === 'partition-cluster' || k === 'pause-cluster';
    if (takesClusterAway(kind) && atMs < clusterDownUntil) kind = 'agent-crash';
    if (takesClusterAway(kind)) clusterDownUntil = atMs + durationMs + 3000;
    const target = kind.endsWith('grid') || kind === 'grid-crash' || kind.startsWith('leader-') ? 'grid'
      : kind.includes('cluster') || kind === 'corrupt-newest' ? cluster
        : kind === 'enospc' || kind === 'eio' ? [agent, cluster, 'grid'][rng.int(3)]!
          : agent;
    out.push({ atMs, kind, target, durationMs, count: 1 + rng.int(3) });
  }
  return out.sort((a, b) => a.atMs - b.atMs || a.kind.localeCompare(b.kind));
}
