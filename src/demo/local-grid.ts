import { join } from 'node:path';
import { spawnService, type AgentProcess } from '../node/agent-process.js';
import { detectFreezer } from '../node/units/freezer.js';
import { realRuntime } from '../wire/real-clients.js';

// A whole local grid on loopback as separate OS processes: one grid
// coordinator, N cluster coordinators, M node agents per cluster, each
// cluster with its own store directory (shared by its agents, outliving any
// one of them). Started in order and stopped in reverse.

export interface LocalGridOptions {
  workDir: string;
  clusters: number;
  nodesPerCluster: number;
  capacityUnits: number;
  heartbeatIntervalMs: number;
  checkpointIntervalMs: number;
  freezer?: string | undefined;
  logs: 'inherit' | 'ignore';
  /**
   * Gets the grid's stop at once, before any service starts: a caller that is
   * interrupted while the grid starts can still stop what has started.
   */
  onStop?(stop: () => Promise<void>): void;
}

export interface LocalCluster {
  clusterId: string;
  proc: AgentProcess;
  storeDir: string;
  agents: AgentProcess[];
}

export interface LocalGrid {
  grid: AgentProcess;
  clusters: LocalCluster[];
  stop(): Promise<void>;
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
  o.onStop?.(stop);
  try {
    const grid = await spawnService('grid', [
      '--data-dir', join(o.workDir, 'grid'), '--heartbeat-interval-ms', String(o.heartbeatIntervalMs),
      '--checkpoint-interval-ms', String(o.checkpointIntervalMs),
    ], process.env, o.logs);
    started.push(grid);
    const clusters: LocalCluster[] = [];
    for (let c = 1; c <= o.clusters; c++) {
      const clusterId = `cluster-${c}`;
      const storeDir = join(o.workDir, clusterId, 'store');
      const proc = await spawnService('cluster', [
        '--data-dir', join(o.workDir, clusterId, 'coordinator'), '--store-dir', storeDir, '--cluster-id', clusterId,
        '--grid', grid.ready.grpc, '--heartbeat-interval-ms', String(o.heartbeatIntervalMs),
      ], process.env, o.logs);
      started.push(proc);
      const agents: AgentProcess[] = [];
      for (let n = 1; n <= o.nodesPerCluster; n++) {
        const nodeId = `c${c}-node-${n}-${process.pid}`;
        const args = ['--data-dir', join(o.workDir, clusterId, `node-${n}`), '--node-id', nodeId, '--store-dir', storeDir,
          '--cluster', proc.ready.grpc, '--capacity', String(o.capacityUnits)];
        if (o.freezer) args.push('--freezer', o.freezer);
        const agent = await spawnService('agent', args, process.env, o.logs);
        started.push(agent);
        agentProcs.push(agent);
        agents.push(agent);
      }
      clusters.push({ clusterId, proc, storeDir, agents });
    }
    return { grid, clusters, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
