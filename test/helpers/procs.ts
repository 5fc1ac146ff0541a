import { join } from 'node:path';
import { spawnService, type AgentProcess } from './services.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { uniqueNodeId } from './agent.js';
import { untilCluster } from './cluster.js';
import { realRuntime } from '../../src/wire/real-clients.js';

// Real processes for cluster tests: a coordinator and agents added one by
// one, all stopped afterwards, and the cgroups (and frozen units) of agents
// killed with kill -9 removed.

const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';

export interface ClusterProcs {
  proc: AgentProcess;
  client: ClusterClient;
  store: string;
  agents: AgentProcess[];
  /** Starts an agent of this cluster and waits until the coordinator sees it alive. */
  addAgent(capacity: number, env?: NodeJS.ProcessEnv): Promise<AgentProcess>;
}

export interface Procs {
  /** Every process started, to stop at the end. */
  all: AgentProcess[];
  cluster(id: string, args: string[], env?: NodeJS.ProcessEnv): Promise<ClusterProcs>;
  spawn(service: string, args: string[], env?: NodeJS.ProcessEnv): Promise<AgentProcess>;
}

export async function withProcs(dir: string, fn: (p: Procs) => Promise<void>): Promise<void> {
  const all: AgentProcess[] = [];
  const agents: AgentProcess[] = [];
  const clients: ClusterClient[] = [];
  const spawn = async (service: string, args: string[], env: NodeJS.ProcessEnv = process.env) => {
    const p = await spawnService(service, args, env, logs);
    all.push(p);
    return p;
  };
  const cluster = async (id: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ClusterProcs> => {
    const store = join(dir, `${id}-store`);
    const proc = await spawn('cluster', [
      '--data-dir', join(dir, id), '--store-dir', store, '--cluster-id', id, '--heartbeat-interval-ms', '100', '--metrics-listen', 'none', ...args,
    ], env);
    const client = new ClusterClient(proc.ready.grpc);
    clients.push(client);
    const mine: AgentProcess[] = [];
    const addAgent = async (capacity: number, agentEnv: NodeJS.ProcessEnv = process.env) => {
      const n = mine.length + 1;
      const a = await spawn('agent', [
        '--data-dir', join(dir, `${id}-n${n}`), '--node-id', uniqueNodeId(`${id}${n}`), '--store-dir', store,
        '--cluster', proc.ready.grpc, '--capacity', String(capacity), '--metrics-listen', 'none',
      ], agentEnv);
      mine.push(a);
      agents.push(a);
      await untilCluster(client, (s) => s.nodes.some((x) => x.nodeId === a.ready.nodeId && x.verdict === 'alive'), `agent ${a.ready.nodeId} alive in ${id}`);
      return a;
    };
    return { proc, client, store, agents: mine, addAgent };
  };
  try {
    await fn({ all, cluster, spawn });
  } finally {
    for (const c of clients) c.close();
    for (const p of [...all].reverse()) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
      await p.exited;
    }
    for (const a of agents) await (await detectFreezer('auto', { time: realRuntime(), scope: a.ready.nodeId })).cleanupScope();
  }
}

/** kill -9 of agents and of their units' process groups, all at once. */
export async function kill9Agents(agents: AgentProcess[]): Promise<void> {
  const pids: number[] = [];
  for (const a of agents) {
    const c = new AgentClient(a.ready.grpc);
    pids.push(...(await c.status()).jobs.flatMap((j) => j.units.filter((u) => u.state !== 'exited').map((u) => u.pid)));
    c.close();
  }
  for (const a of agents) a.child.kill('SIGKILL');
  for (const pid of pids) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  await Promise.all(agents.map((a) => a.exited));
}
