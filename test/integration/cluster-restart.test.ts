import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { spawnService, type AgentProcess } from '../helpers/services.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { referenceBalances, totalOf, expectedTotal } from '../../src/bank/model.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { listCommitted } from '../../src/store/index.js';
import { uniqueNodeId, untilAgent } from '../helpers/agent.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { withTmp } from '../helpers/tmp.js';
import { untilCluster as until } from '../helpers/cluster.js';
import { realRuntime } from '../../src/wire/real-clients.js';

// kill -9 of a cluster coordinator (no grid) and its restart on the same
// data directory and address. Its agents' job leases run out unless it is
// back in time; either way the restarted coordinator takes the job back from
// its job table: renewing the leases if the units still run (a 5 s lease),
// restoring the job from its last committed epoch if they were fenced (a
// 1 s lease, and the restart only once every agent has fenced the job). The
// job ends with the failure-free result.

const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';

async function scenario(waitForFence: boolean): Promise<void> {
  await withTmp('cluster-restart', async (dir) => {
    const storeDir = join(dir, 'store');
    const args = ['--data-dir', join(dir, 'cluster'), '--store-dir', storeDir, '--cluster-id', 'c1',
      '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '200', '--metrics-listen', 'none',
      // Restarted at once: a lease longer than a restart (about 1.5 s here) lets the units run on.
      '--agent-lease-ms', waitForFence ? '1000' : '5000'];
    let cluster = await spawnService('cluster', [...args, '--listen', '127.0.0.1:0'], process.env, logs);
    let client = new ClusterClient(cluster.ready.grpc);
    const agents: AgentProcess[] = [];
    const params = { accounts: 512, units: 4, opsPerUnit: 3000, seed: waitForFence ? 71 : 72 };
    try {
      for (const n of [1, 2]) {
        agents.push(await spawnService('agent', [
          '--data-dir', join(dir, `n${n}`), '--node-id', uniqueNodeId(`cr${n}`), '--store-dir', storeDir,
          '--cluster', cluster.ready.grpc, '--capacity', '4', '--metrics-listen', 'none',
        ], process.env, logs));
      }
      await until(client, (s) => s.nodes.filter((n) => n.verdict === 'alive').length === 2, 'two alive nodes');
      const submitted = await client.submitJob({ job: clusterBankSpec('bank', params, 0) });
      await until(client, (s) => (s.jobs[0]?.roundsCommitted ?? 0n) >= 2n, 'two committed rounds');

      const address = cluster.ready.grpc;
      cluster.child.kill('SIGKILL');
      await cluster.exited;
      client.close();
      if (waitForFence) {
        // Nobody renews the job's lease: every agent kills its units.
        for (const a of agents) {
          const ac = new AgentClient(a.ready.grpc);
          // Fenced, and every unit reaped (the agent tells "fenced" once they are).
          const fenced = await untilAgent(ac, (st) => {
            const j = st.jobs.find((x) => x.jobId === 'bank');
            return j?.state === 'fenced' && j.units.every((u) => u.state === 'exited');
          }, `${a.ready.nodeId} to fence the job`, 60_000);
          const job = fenced.jobs.find((j) => j.jobId === 'bank')!;
          expect(job.lastError).toMatch(/lease lapsed/);
          for (const u of job.units) expect(['SIGTERM', 'SIGKILL']).toContain(u.signal); // killed, not ended
          ac.close();
        }
      }
      cluster = await spawnService('cluster', [...args, '--listen', address], process.env, logs);
      expect(cluster.ready.incarnation).toBe('2');
      client = new ClusterClient(cluster.ready.grpc);
      const resumed = await client.status();
      expect(resumed.jobs.map((j) => j.jobId)).toEqual(['bank']);
      expect(resumed.jobs[0]!.placements).toEqual(submitted.job!.placements);

      const done = await until(client, (s) => s.jobs[0]!.state === 'completed' || s.jobs[0]!.state === 'failed', 'the job to end');
      const job = done.jobs[0]!;
      expect(job.state, job.lastError).toBe('completed');
      // Fenced units are restored from the last epoch; units whose lease held just ran on.
      expect(job.recoveries, JSON.stringify(job, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))).toBe(waitForFence ? 1n : 0n);
      // The coordinator stops first: its garbage collection may still be retiring epochs the last commit let go.
      cluster.child.kill('SIGTERM');
      await cluster.exited;
      const epochs = await listCommitted(storeDir, 'bank');
      for (const m of epochs) {
        for (let i = 0; i < params.units; i++) {
          const p = { ...params, units: 1, seed: params.seed + i };
          const image = await bankFromEpoch(storeDir, 'bank', m.epoch, p, `bank-u${i}`);
          expect(totalOf(image.balances), `epoch ${m.epoch} sub-bank ${i}`).toBe(expectedTotal(p));
          if (m === epochs[epochs.length - 1]) {
            expect(image.counters).toEqual([params.opsPerUnit]);
            expect(balancesDigest(image.balances)).toBe(balancesDigest(referenceBalances(p)));
          }
        }
      }
    } finally {
      client.close();
      for (const a of agents) if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGTERM');
      await Promise.all(agents.map((a) => a.exited));
      if (cluster.child.exitCode === null && cluster.child.signalCode === null) cluster.child.kill('SIGTERM');
      await cluster.exited;
      for (const a of agents) await (await detectFreezer('auto', { time: realRuntime(), scope: a.ready.nodeId })).cleanupScope();
    }
  });
}

describe('cluster: kill -9 and restart of the cluster coordinator', () => {
  it('restarted at once: it takes the job back and the job ends with the failure-free digest', () => scenario(false), 180_000);
  it('restarted after the agents fenced the job: it restores the job in place, failure-free digest', () => scenario(true), 180_000);
});
