import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { spawnService } from '../helpers/services.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { referenceBalances, totalOf, expectedTotal } from '../../src/bank/model.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { listCommitted } from '../../src/store/index.js';
import { uniqueNodeId } from '../helpers/agent.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { withTmp } from '../helpers/tmp.js';
import { untilCluster as until } from '../helpers/cluster.js';
import { realRuntime } from '../../src/wire/real-clients.js';

// A cluster coordinator and three node agents as real processes. The bank
// job's units are placed over the nodes; the coordinator runs coordinated
// rounds; kill -9 of a node agent that holds units is detected within 2 s
// at 100 ms heartbeats, the job is restored from its last committed epoch
// with the lost units on a spare node, and it ends with the failure-free result.

const params = { accounts: 1024, units: 4, opsPerUnit: 2500, seed: 40 };
const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';

describe('cluster: kill -9 of a node agent during a job', () => {
  it('is detected within 2 s, the job recovers on a spare node and ends with the failure-free digest', async () => {
    await withTmp('cluster', async (dir) => {
      const storeDir = join(dir, 'store');
      const cluster = await spawnService('cluster', [
        '--data-dir', join(dir, 'cluster'), '--store-dir', storeDir, '--cluster-id', 'c1',
        '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '200', '--metrics-listen', 'none',
      ], process.env, logs);
      const client = new ClusterClient(cluster.ready.grpc);
      const agents = [];
      try {
        for (const n of [1, 2, 3]) {
          agents.push(await spawnService('agent', [
            '--data-dir', join(dir, `n${n}`), '--node-id', uniqueNodeId(`cl${n}`), '--store-dir', storeDir,
            '--cluster', cluster.ready.grpc, '--capacity', '4', '--metrics-listen', 'none',
          ], process.env, logs));
        }
        await until(client, (s) => s.nodes.length === 3 && s.nodes.every((n) => n.verdict === 'alive'), 'three alive nodes');
        const submitted = await client.submitJob({ job: clusterBankSpec('bank', params, 0) });
        const used = new Set(submitted.job!.placements.map((p) => p.nodeId));
        expect(submitted.job!.placements).toHaveLength(4);
        await until(client, (s) => (s.jobs[0]?.roundsCommitted ?? 0n) >= 2n, 'two committed rounds');

        // Kill a node that holds units, and its units with it.
        const victim = agents.find((a) => used.has(a.ready.nodeId))!;
        const victimClient = new AgentClient(victim.ready.grpc);
        const pids = (await victimClient.status()).jobs.flatMap((j) => j.units.map((u) => u.pid));
        victimClient.close();
        const killedAt = performance.now();
        victim.child.kill('SIGKILL');
        for (const pid of pids) {
          try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
        }
        await until(client, (s) => s.nodes.find((n) => n.nodeId === victim.ready.nodeId)?.verdict === 'failed', 'the failure verdict', 5_000);
        const detectionMs = performance.now() - killedAt;
        expect(detectionMs).toBeLessThan(2_000);

        const done = await until(client, (s) => s.jobs[0]!.state === 'completed' || s.jobs[0]!.state === 'failed', 'the job to end');
        const job = done.jobs[0]!;
        expect(job.lastError === '' || job.state === 'completed', job.lastError).toBe(true);
        expect(job.state).toBe('completed');
        expect(job.recoveries).toBe(1n);
        expect(job.placements.every((p) => p.nodeId !== victim.ready.nodeId)).toBe(true);

        // The last committed epoch holds every sub-bank's failure-free end state. The coordinator stops first: its
        // garbage collection may still be retiring the epochs the last commit let go (seen in CI: a listed epoch gone).
        cluster.child.kill('SIGTERM');
        await cluster.exited;
        const epochs = await listCommitted(storeDir, 'bank');
        const last = epochs[epochs.length - 1]!;
        expect(last.epoch).toBe(job.lastEpoch);
        for (let i = 0; i < params.units; i++) {
          const p = { ...params, units: 1, seed: params.seed + i };
          const image = await bankFromEpoch(storeDir, 'bank', last.epoch, p, `bank-u${i}`);
          expect(image.counters).toEqual([params.opsPerUnit]);
          expect(totalOf(image.balances)).toBe(expectedTotal(p));
          expect(balancesDigest(image.balances)).toBe(balancesDigest(referenceBalances(p)));
        }
        // Every committed epoch is a consistent state: each sub-bank sums to its total.
        for (const m of epochs) {
          for (let i = 0; i < params.units; i++) {
            const p = { ...params, units: 1, seed: params.seed + i };
            const image = await bankFromEpoch(storeDir, 'bank', m.epoch, p, `bank-u${i}`);
            expect(totalOf(image.balances), `epoch ${m.epoch} sub-bank ${i}`).toBe(expectedTotal(p));
          }
        }
      } finally {
        client.close();
        for (const a of agents) if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGTERM');
        await Promise.all(agents.map((a) => a.exited));
        cluster.child.kill('SIGTERM');
        await cluster.exited;
        // The victim may have died with its units frozen: remove them and its cgroups.
        for (const a of agents) await (await detectFreezer('auto', { time: realRuntime(), scope: a.ready.nodeId })).cleanupScope();
      }
    });
  });
});
