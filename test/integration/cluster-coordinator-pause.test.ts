import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { spawnService, type AgentProcess } from '../helpers/services.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { clusterBankSpec } from '../../src/bank/job.js';
import { referenceBalances, totalOf, expectedTotal } from '../../src/bank/model.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { uniqueNodeId } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';
import { untilCluster as until } from '../helpers/cluster.js';
import { stall } from '../helpers/stall.js';
import { realRuntime } from '../../src/wire/real-clients.js';

// SIGSTOP of the cluster coordinator itself for 3 s while a job runs over
// three real agents (what a GC or VM pause does to it). Its failure detector
// heard nothing while stopped; it must take that for its own pause, not for
// the silence of its nodes: no node is declared failed (they used to be, all
// three in the same millisecond, and the job failed: "no alive node has
// room"). The agents' job leases (1 s) lapse meanwhile and they fence the
// job, as leases demand; the coordinator restores it in place, moving
// nothing, and the job commits rounds again and ends with the failure-free
// result.

const params = { accounts: 512, units: 4, opsPerUnit: 8_000, seed: 93 };
const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';

describe('cluster: the coordinator process is stopped for 3 s', () => {
  it('declares no node failed; the job keeps committing rounds and ends with the failure-free digest', async () => {
    await withTmp('cluster-pause', async (dir) => {
      const storeDir = join(dir, 'store');
      const cluster = await spawnService('cluster', [
        '--data-dir', join(dir, 'cluster'), '--store-dir', storeDir, '--cluster-id', 'c1',
        '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '200', '--metrics-listen', 'none',
      ], process.env, logs);
      const client = new ClusterClient(cluster.ready.grpc);
      const agents: AgentProcess[] = [];
      try {
        for (const n of [1, 2, 3]) {
          agents.push(await spawnService('agent', [
            '--data-dir', join(dir, `n${n}`), '--node-id', uniqueNodeId(`cp${n}`), '--store-dir', storeDir,
            '--cluster', cluster.ready.grpc, '--capacity', '2', '--metrics-listen', 'none',
          ], process.env, logs));
        }
        await until(client, (s) => s.nodes.length === 3 && s.nodes.every((n) => n.verdict === 'alive'), 'three alive nodes');
        const submitted = await client.submitJob({ job: clusterBankSpec('bank', params, 0) });
        const before = await until(client, (s) => (s.jobs[0]?.roundsCommitted ?? 0n) >= 2n, 'two committed rounds');
        expect(before.jobs[0]!.state).toBe('running'); // else the job is too short for this test

        await stall(cluster, 3_000);

        const after = await until(client, (s) => s.jobs[0]!.state === 'failed' || s.jobs[0]!.roundsCommitted >= before.jobs[0]!.roundsCommitted + 3n,
          'three more committed rounds');
        expect(after.jobs[0]!.state, after.jobs[0]!.lastError).not.toBe('failed');
        expect(after.failuresDetected).toBe(0n);
        expect(after.nodes.map((n) => n.verdict)).toEqual(['alive', 'alive', 'alive']);
        expect(after.jobs[0]!.lastError).not.toMatch(/no alive node has room/);

        const done = await until(client, (s) => s.jobs[0]!.state !== 'running' && s.jobs[0]!.state !== 'recovering', 'the job to end');
        const job = done.jobs[0]!;
        expect(job.state, job.lastError).toBe('completed');
        expect(done.failuresDetected).toBe(0n);
        expect(job.placements).toEqual(submitted.job!.placements); // nothing moved
        expect(job.recoveries).toBeLessThanOrEqual(1n); // at most the restore in place of the fenced units
        console.log(`after the stop: ${job.roundsCommitted - before.jobs[0]!.roundsCommitted} more rounds committed, ${job.recoveries} restore in place`);
        for (let i = 0; i < params.units; i++) {
          const p = { ...params, units: 1, seed: params.seed + i };
          const image = await bankFromEpoch(storeDir, 'bank', job.lastEpoch, p, `bank-u${i}`);
          expect(image.counters).toEqual([params.opsPerUnit]);
          expect(totalOf(image.balances)).toBe(expectedTotal(p));
          expect(balancesDigest(image.balances)).toBe(balancesDigest(referenceBalances(p)));
        }
      } finally {
        client.close();
        cluster.child.kill('SIGCONT');
        for (const a of agents) if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGTERM');
        await Promise.all(agents.map((a) => a.exited));
        cluster.child.kill('SIGTERM');
        await cluster.exited;
        for (const a of agents) await (await detectFreezer('auto', { time: realRuntime(), scope: a.ready.nodeId })).cleanupScope();
      }
    });
  }, 240_000);
});
