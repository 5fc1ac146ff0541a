// round_empty_<n>_agents: the latency of an empty coordinated round (no page
// changed; one idle unit per agent, frozen and thawed) against the number of
// agents, next to a bare gRPC unary round trip on the same loopback. Agents
// share this process (each with its own gRPC server, freezer scope and page
// memory); the round is the cluster's real driver (ClusterJob) over the pure
// round core, writing a real manifest with fsyncs to a shared store.

import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { credentials, makeClientConstructor, type Client } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { silentLogger } from '../src/common/log.js';
import { agentConfigFromFlags } from '../src/node/config.js';
import { runAgent, type RunningAgent } from '../src/node/run-agent.js';
import { AgentClient } from '../src/wire/agent-client.js';
import { ClusterJob } from '../src/cluster/cluster-job.js';
import { DEFAULT_ROUND_CONFIG } from '../src/protocol/core/round.js';
import { realRuntime } from '../src/wire/real-clients.js';
import { info, list, median, printBench } from './format.js';

const COUNTS = [1, 4, 16, 64];
const JOB = 'round-bench';

type HealthClient = Client & { check(req: { service: string }, cb: (err: Error | null) => void): void };

async function rttMs(address: string, n: number): Promise<number[]> {
  const Ctor = makeClientConstructor(healthService, 'grpc.health.v1.Health') as unknown as new (a: string, c: ReturnType<typeof credentials.createInsecure>) => HealthClient;
  const hc = new Ctor(address, credentials.createInsecure());
  const once = () => new Promise<void>((resolve, reject) => hc.check({ service: '' }, (err) => (err ? reject(err) : resolve())));
  for (let i = 0; i < 20; i++) await once();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await once();
    out.push(performance.now() - t0);
  }
  hc.close();
  return out;
}

export async function benchRoundLatency(workDir: string, rounds: number): Promise<void> {
  const storeDir = path.join(workDir, 'round-store');
  const log = silentLogger();
  const agents: RunningAgent[] = [];
  const clients: AgentClient[] = [];
  try {
    const max = Math.max(...COUNTS);
    for (let i = 0; i < max; i++) {
      const config = agentConfigFromFlags({
        nodeId: `bench-r${process.pid}-${i}`, dataDir: path.join(workDir, `agent-${i}`), storeDir, memoryBudget: '64KiB',
      });
      const a = await runAgent(config, log);
      agents.push(a);
      clients.push(new AgentClient(a.address));
    }
    info(`round latency: ${max} agents in this process, freezer ${agents[0]!.agent.status().freezer}, one idle unit (/bin/sleep) per agent`);
    const rtt = median(await rttMs(agents[0]!.address, 200));
    for (const n of COUNTS) {
      const jobId = `${JOB}-${n}`;
      for (let i = 0; i < n; i++) {
        await agents[i]!.agent.startJob({ jobId, units: [{ unitId: 'u', command: '/bin/sleep', args: ['600'], env: {} }], checkpointIntervalMs: 0, fullEvery: 0 });
      }
      const placement = new Map(Array.from({ length: n }, (_, i) => [`u${i}`, agents[i]!.agent.deps.config.nodeId]));
      const byNode = new Map(Array.from({ length: n }, (_, i) => [agents[i]!.agent.deps.config.nodeId, clients[i]!]));
      const job = new ClusterJob({ jobId, units: [], checkpointIntervalMs: 0, fullEvery: 1_000_000 }, placement, DEFAULT_ROUND_CONFIG, {
        clusterId: 'bench', incarnation: 1n, storeDir, runtime: realRuntime(), clientOf: (id) => byNode.get(id) ?? null, log,
        onOutcome: () => undefined,
      });
      const times: number[] = [];
      for (let r = 0; r < rounds + 3; r++) {
        const t0 = performance.now();
        const outcome = await job.checkpoint();
        const ms = performance.now() - t0;
        if (outcome.kind !== 'committed') throw new Error(`round over ${n} agents aborted: ${outcome.reason}`);
        if (r >= 3) times.push(ms); // the first rounds are full epochs and warm-up
      }
      for (let i = 0; i < n; i++) await agents[i]!.agent.stopJob(jobId);
      const m = median(times);
      info(`  ${n} agents: round ms ${list(times, 2)}`);
      printBench({
        name: `round_empty_${n}_agents`,
        value: m,
        unit: 'ms',
        ratio: m / rtt,
        ref: `grpc_unary_rtt_loopback=${rtt.toFixed(3)}ms(median_of_200)`,
        target: 'none(report)',
        met: undefined,
      });
    }
  } finally {
    for (const c of clients) c.close();
    for (const a of agents) await a.stop();
  }
}
