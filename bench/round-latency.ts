// round_empty_<n>_agents: the latency of an empty coordinated round (no page
// changed; one idle unit per agent, frozen and thawed) against the number of
// agents, next to a bare gRPC unary round trip on the same loopback. Agents
// share this process (each with its own gRPC server, freezer scope and page
// memory), and so does the cluster coordinator: its real shell and driver
// over the pure supervisor and round cores (the agents registered and
// beating over gRPC), writing a real manifest with fsyncs to a shared store.
// Each count runs in a cluster of its own with that many agents: a job of n
// units, one on each agent (checked).

import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { credentials, makeClientConstructor, type Client } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { silentLogger } from '../src/common/log.js';
import { agentConfigFromFlags } from '../src/node/config.js';
import { runAgent, type RunningAgent } from '../src/node/run-agent.js';
import type { EventHub } from '../src/runtime/event-hub.js';
import { runCluster } from '../src/cluster/run-cluster.js';
import { linkToCluster } from '../src/node/cluster-link.js';
import { realRuntime } from '../src/wire/real-clients.js';
import { INSECURE } from '../src/common/transport-security.js';
import { info, list, median, printBench } from './format.js';

const COUNTS = [1, 4, 16, 64];
/** Issue 8: an empty round at 64 agents takes at most 40 bare round trips. */
const TARGET_AGENTS = 64;
export const ROUND_TARGET_RTTS = 40;
const JOB = 'round-bench';

type HealthClient = Client & { check(req: { service: string }, cb: (err: Error | null) => void): void };

function healthClient(address: string): HealthClient {
  const Ctor = makeClientConstructor(healthService, 'grpc.health.v1.Health') as unknown as new (a: string, c: ReturnType<typeof credentials.createInsecure>) => HealthClient;
  return new Ctor(address, credentials.createInsecure());
}

function check(hc: HealthClient): Promise<void> {
  return new Promise<void>((resolve, reject) => hc.check({ service: '' }, (err) => (err ? reject(err) : resolve())));
}

/**
 * Context beside the target's reference: one bare call to each of the agents at once, as a round's PREPARE goes
 * out — what any round among them costs at least, on this machine's cores (in a real cluster each agent has its own).
 */
async function fanOutMs(addresses: string[], n: number): Promise<number[]> {
  const hcs = addresses.map(healthClient);
  for (let i = 0; i < 5; i++) await Promise.all(hcs.map(check));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await Promise.all(hcs.map(check));
    out.push(performance.now() - t0);
  }
  for (const hc of hcs) hc.close();
  return out;
}

async function rttMs(address: string, n: number): Promise<number[]> {
  const hc = healthClient(address);
  const once = () => check(hc);
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
  let first = true;
  for (const n of COUNTS) {
    await measure(path.join(workDir, `round-${n}`), n, rounds, first);
    first = false;
  }
}

/**
 * A round among n agents, in a cluster of its own: n agents registered and beating, not n of 64 (64 agents'
 * heartbeats alone keep this process's gRPC busy and slow every round), with the peer measured beside them.
 */
async function measure(dir: string, n: number, rounds: number, first: boolean): Promise<void> {
  const storeDir = path.join(dir, 'store');
  const log = silentLogger();
  const runtime = realRuntime();
  const agents: RunningAgent[] = [];
  const links: Array<{ stop(): void }> = [];
  const cluster = await runCluster({
    clusterId: 'bench', dataDir: path.join(dir, 'cluster'), storeDir, listen: '127.0.0.1:0', metricsListen: null,
    heartbeatIntervalMs: 200, checkpointIntervalMs: 86_400_000, roundTimeoutMs: 10_000, agentLeaseMs: 0,
  // Plaintext: one process plays every tier here, and the bench measures the round, not TLS.
  }, log, INSECURE, runtime);
  try {
    for (let i = 0; i < n; i++) {
      const config = agentConfigFromFlags({
        nodeId: `bench-r${process.pid}-${n}-${String(i).padStart(2, '0')}`, dataDir: path.join(dir, `agent-${i}`), storeDir, memoryBudget: '64KiB', underCluster: true,
      });
      const a = await runAgent(config, log, INSECURE, runtime);
      agents.push(a);
      links.push(linkToCluster({
        clusterAddress: cluster.address, nodeId: config.nodeId, incarnation: a.agent.status().incarnation, agentAddress: a.address, capacityUnits: 4,
        leases: a.agent.leases, reports: () => a.jobReports(), onJobChange: (l) => a.onJobChange(l), log, runtime,
      }));
    }
    await untilEvent(cluster.hub, () => cluster.shell.core.nodesView().filter((v) => v.verdict === 'alive').length === n);
    if (first) info(`round latency: n agents and their own cluster coordinator in this process, freezer ${agents[0]!.agent.status().freezer}, one idle unit (/bin/sleep) per agent`);
    // The peer, with the same n agents beating: a bare gRPC round trip to one of them.
    const rtt = median(await rttMs(agents[0]!.address, 200));
    const fanOut = median(await fanOutMs(agents.map((a) => a.address), 50));
    const units = Array.from({ length: n }, (_, i) => ({ unitId: `u${i}`, command: '/bin/sleep', args: ['600'], env: {} }));
    // No periodic rounds (a day apart) and no full epochs after the first: every measured round is an empty incremental one.
    await cluster.shell.submitJob({ jobId: JOB, units, checkpointIntervalMs: 86_400_000, fullEvery: 1_000_000 }, false);
    const used = new Set(cluster.shell.core.jobView(JOB)!.placement.values());
    if (used.size !== n) throw new Error(`job ${JOB}: ${n} units placed on ${used.size} agents, not one each`);
    const times: number[] = [];
    for (let r = 0; r < rounds + 3; r++) {
      const t0 = performance.now();
      await cluster.shell.checkpointJob(JOB);
      const ms = performance.now() - t0;
      if (r >= 3) times.push(ms); // the first rounds are full epochs and warm-up
    }
    const m = median(times);
    info(`  ${n} agents: round ms ${list(times, 2)}; one bare call to each agent at once: ${fanOut.toFixed(2)} ms (median of 50), the round ${(m / fanOut).toFixed(1)}x that`);
    const targeted = n === TARGET_AGENTS;
    printBench({
      name: `round_empty_${n}_agents`,
      value: m,
      unit: 'ms',
      ratio: m / rtt,
      ref: `grpc_unary_rtt_loopback=${rtt.toFixed(3)}ms(median_of_200,${n}_agents_beating)`,
      target: targeted ? `ratio<=${ROUND_TARGET_RTTS}` : 'none(report)',
      met: targeted ? m / rtt <= ROUND_TARGET_RTTS : undefined,
    });
  } finally {
    for (const l of links) l.stop();
    await cluster.stop();
    for (const a of agents) await a.stop();
  }
}

/** Resolves once done() holds, looked at on each of the cluster's Watch events (registrations, verdicts). */
function untilEvent(hub: EventHub, done: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (done()) return resolve();
    const sub = hub.subscribe({ jobId: '', replayRecent: 0 }, {
      wake: () => {
        while (sub.take() !== undefined) { /* drained: only the state matters */ }
        if (!done()) return;
        sub.close();
        resolve();
      },
      end: () => undefined,
    });
  });
}
