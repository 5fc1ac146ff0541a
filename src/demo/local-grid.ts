import { join } from 'node:path';
import { spawnService, type AgentProcess } from '../node/agent-process.js';
import { detectFreezer } from '../node/units/freezer.js';
import { realRuntime } from '../wire/real-clients.js';
import { certPaths } from '../common/cert-paths.js';
import { INSECURE, loadTlsFiles, type TransportSecurity } from '../common/transport-security.js';
import type { PeerIdentity } from '../common/tls-identity.js';

// A whole local grid on loopback as separate OS processes: one grid
// coordinator, N cluster coordinators, M node agents per cluster, each
// cluster with its own store directory (shared by its agents, outliving any
// one of them). Started in order and stopped in reverse. With a certs dir
// every link is mutual TLS: the certificates are made there first (as
// `gridckpt certs init` makes them) and the caller gets the operator's.

export interface LocalGridOptions {
  workDir: string;
  clusters: number;
  nodesPerCluster: number;
  capacityUnits: number;
  heartbeatIntervalMs: number;
  checkpointIntervalMs: number;
  freezer?: string | undefined;
  logs: 'inherit' | 'ignore';
  /** Where the CA and every service's certificate are made; null: every service --insecure (loopback). */
  certsDir: string | null;
  /** now, as wall-clock ms: the certificates' validity starts there. */
  nowMs: number;
  /**
   * Gets the grid's stop at once, before any service starts: a caller that is
   * interrupted while the grid starts can still stop what has started.
   */
  onStop?(stop: () => Promise<void>): void;
  /** etcd endpoints: three grid coordinators electing a leader there (docs/grid-ha.md); null: one grid with its catalog file. */
  etcd?: string | null;
}

export interface LocalCluster {
  clusterId: string;
  proc: AgentProcess;
  storeDir: string;
  agents: AgentProcess[];
}

export interface LocalGrid {
  /** The first grid coordinator (with etcd: the first to campaign, which leads at the start). */
  grid: AgentProcess;
  /** Every grid coordinator: one, or three with etcd. */
  grids: AgentProcess[];
  clusters: LocalCluster[];
  /** How an operator reaches these services (the certs dir's operator certificate, or plaintext). */
  operator: TransportSecurity;
  stop(): Promise<void>;
}

const GRID_ID = 'grid-1';
const OPERATOR: PeerIdentity = { role: 'operator', id: 'admin' };
const clusterIdOf = (c: number) => `cluster-${c}`;
const nodeIdOf = (c: number, n: number, suffix: string) => `c${c}-node-${n}${suffix}`;

/** The grid's, each cluster's and each agent's identity in a local grid (suffix: what makes node ids unique on a host). */
export function localGridIdentities(o: { gridId: string; clusters: number; nodesPerCluster: number; nodeSuffix: string }): PeerIdentity[] {
  const who: PeerIdentity[] = [{ role: 'grid', id: o.gridId }];
  for (let c = 1; c <= o.clusters; c++) {
    who.push({ role: 'cluster', id: clusterIdOf(c) });
    for (let n = 1; n <= o.nodesPerCluster; n++) who.push({ role: 'agent', id: nodeIdOf(c, n, o.nodeSuffix) });
  }
  return who;
}

export async function startLocalGrid(o: LocalGridOptions): Promise<LocalGrid> {
  const started: AgentProcess[] = [];
  const agentProcs: AgentProcess[] = [];
  let stopping: Promise<void> | null = null;
  // Once, however many ask (a signal may come while a drill's own stop runs).
  const stop = () => (stopping ??= stopAll());
  const stopAll = async () => {
    for (const p of [...started].reverse()) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
      await p.exited;
    }
    // An agent that died (the drill kills one) may have left units frozen in
    // its cgroups: they must not run on, and nothing else will remove them.
    for (const p of agentProcs) await (await detectFreezer('auto', { scope: p.ready.nodeId, time: realRuntime() })).cleanupScope();
  };
  const suffix = `-${process.pid}`;
  const certsDir = o.certsDir;
  if (certsDir) {
    // Loaded only here (see certs-cmd.ts).
    const { issueCerts } = await import('../common/cert-authority.js');
    await issueCerts(certsDir, [...localGridIdentities({ gridId: GRID_ID, clusters: o.clusters, nodesPerCluster: o.nodesPerCluster, nodeSuffix: suffix }), OPERATOR], { hosts: [], days: 7, nowMs: o.nowMs });
  }
  const security = (who: PeerIdentity) => {
    if (!certsDir) return ['--insecure'];
    const p = certPaths(certsDir, who);
    return ['--tls-cert', p.cert, '--tls-key', p.key, '--tls-ca', p.ca];
  };
  const operator = certsDir ? await loadTlsFiles(certPaths(certsDir, OPERATOR)) : INSECURE;
  o.onStop?.(stop);
  try {
    const grids: AgentProcess[] = [];
    for (let i = 1; i <= (o.etcd ? 3 : 1); i++) {
      // With etcd the three share one grid id (one election, one catalog) and one certificate; each its own data dir.
      const grid = await spawnService('grid', [
        ...security({ role: 'grid', id: GRID_ID }), '--grid-id', GRID_ID, '--data-dir', join(o.workDir, i === 1 ? 'grid' : `grid-${i}`), '--heartbeat-interval-ms', String(o.heartbeatIntervalMs),
        '--checkpoint-interval-ms', String(o.checkpointIntervalMs), ...(o.etcd ? ['--etcd', o.etcd] : []),
      ], process.env, o.logs);
      started.push(grid);
      grids.push(grid);
    }
    const grid = grids[0]!;
    const clusters: LocalCluster[] = [];
    for (let c = 1; c <= o.clusters; c++) {
      const clusterId = clusterIdOf(c);
      const storeDir = join(o.workDir, clusterId, 'store');
      const proc = await spawnService('cluster', [
        ...security({ role: 'cluster', id: clusterId }), '--data-dir', join(o.workDir, clusterId, 'coordinator'), '--store-dir', storeDir, '--cluster-id', clusterId,
        '--grid', grids.map((g) => g.ready.grpc).join(','), '--heartbeat-interval-ms', String(o.heartbeatIntervalMs),
      ], process.env, o.logs);
      started.push(proc);
      const agents: AgentProcess[] = [];
      for (let n = 1; n <= o.nodesPerCluster; n++) {
        const nodeId = nodeIdOf(c, n, suffix);
        const args = [...security({ role: 'agent', id: nodeId }), '--data-dir', join(o.workDir, clusterId, `node-${n}`), '--node-id', nodeId, '--store-dir', storeDir,
          '--cluster', proc.ready.grpc, '--capacity', String(o.capacityUnits)];
        if (o.freezer) args.push('--freezer', o.freezer);
        const agent = await spawnService('agent', args, process.env, o.logs);
        started.push(agent);
        agentProcs.push(agent);
        agents.push(agent);
      }
      clusters.push({ clusterId, proc, storeDir, agents });
    }
    return { grid, grids, clusters, operator, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
