import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { spawnService, type AgentProcess } from '../helpers/services.js';
import { GridClient } from '../../src/wire/grid-client.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { clusterBankSpec } from '../../src/bank/job.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { referenceBalances, totalOf, expectedTotal } from '../../src/bank/model.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { untilCluster, untilGrid } from '../helpers/cluster.js';
import { uniqueNodeId } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';
import { stall } from '../helpers/stall.js';
import { realRuntime } from '../../src/wire/real-clients.js';

// SIGSTOP of the grid coordinator for 3 s while a grid job runs over two
// healthy clusters, every tier a real process. The grid's detector heard
// nothing while stopped; it must take that for its own pause: no cluster is
// declared failed (both used to be, and the job failed: "no alive cluster
// has room"). The clusters' grid lease (6 s here) outlasts the stop, so the
// job simply runs on: no recovery of any kind, more grid rounds, and the
// failure-free result. (With the default 3 s lease a 3 s stop also lapses the
// clusters' leases: they fence their shares and the grid rolls the job back
// to its line, moving nothing — lease semantics, not the detector's.)

const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';
const params = { accounts: 512, units: 4, opsPerUnit: 4_000, seed: 4343 };

describe('grid: the grid coordinator process is stopped for 3 s', () => {
  it('declares no cluster failed; the job keeps committing rounds and ends with the failure-free digest', async () => {
    await withTmp('grid-pause', async (dir) => {
      const procs: AgentProcess[] = [];
      const agents: AgentProcess[] = [];
      const stores = new Map<string, string>();
      const grid = await spawnService('grid', [
        '--data-dir', join(dir, 'grid'), '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '300', '--cluster-lease-ms', '6000',
        '--metrics-listen', 'none',
      ], process.env, logs);
      procs.push(grid);
      const client = new GridClient(grid.ready.grpc);
      try {
        for (const id of ['ca', 'cb']) {
          const store = join(dir, `${id}-store`);
          stores.set(id, store);
          const c = await spawnService('cluster', [
            '--data-dir', join(dir, id), '--store-dir', store, '--cluster-id', id, '--grid', grid.ready.grpc,
            '--heartbeat-interval-ms', '100', '--metrics-listen', 'none',
          ], process.env, logs);
          procs.push(c);
          for (const n of [1, 2]) {
            const a = await spawnService('agent', [
              '--data-dir', join(dir, `${id}-n${n}`), '--node-id', uniqueNodeId(`${id}${n}`), '--store-dir', store,
              '--cluster', c.ready.grpc, '--capacity', '2', '--metrics-listen', 'none',
            ], process.env, logs);
            procs.push(a);
            agents.push(a);
          }
          const cc = new ClusterClient(c.ready.grpc);
          await untilCluster(cc, (s) => s.nodes.filter((x) => x.verdict === 'alive').length === 2, `the agents of ${id}`);
          cc.close();
        }
        await untilGrid(client, (s) => s.clusters.filter((c) => c.verdict === 'alive').length === 2, 'two clusters');
        const submitted = await client.submitGridJob({ job: clusterBankSpec('bank', params, 0) });
        expect(new Set(Object.values(submitted.job!.clusters))).toEqual(new Set(['ca', 'cb']));
        const before = await untilGrid(client, (s) => (s.jobs[0]?.roundsCommitted ?? 0n) >= 2n, 'two grid rounds');
        expect(before.jobs[0]!.state).toBe('running'); // else the job is too short for this test

        await stall(grid, 3_000);

        const after = await untilGrid(client, (s) => s.jobs[0]!.state === 'failed' || s.jobs[0]!.roundsCommitted >= before.jobs[0]!.roundsCommitted + 3n,
          'three more grid rounds', 120_000);
        expect(after.jobs[0]!.state, after.jobs[0]!.lastError).not.toBe('failed');
        expect(after.failuresDetected).toBe(0n);
        expect(after.clusters.map((c) => c.verdict)).toEqual(['alive', 'alive']);

        const done = await untilGrid(client, (s) => s.jobs[0]!.state === 'completed' || s.jobs[0]!.state === 'failed', 'the end of the job', 240_000);
        const end = done.jobs[0]!;
        expect(end.state, end.lastError).toBe('completed');
        expect(done.failuresDetected).toBe(0n);
        expect(end.clusters).toEqual(submitted.job!.clusters); // nothing moved
        expect(end.recoveries).toBe(0n);
        expect(done.recoveries).toBe(0n);
        console.log(`after the stop: ${end.roundsCommitted - before.jobs[0]!.roundsCommitted} more grid rounds`);
        const last = end.lines[end.lines.length - 1]!;
        for (let i = 0; i < params.units; i++) {
          const p = { ...params, units: 1, seed: params.seed + i };
          const c = last.unitClusters[`u${i}`]!;
          const image = await bankFromEpoch(stores.get(c)!, 'bank', last.clusterEpochs[c]!, p, `bank-u${i}`);
          expect(image.counters).toEqual([params.opsPerUnit]);
          expect(totalOf(image.balances)).toBe(expectedTotal(p));
          expect(balancesDigest(image.balances)).toBe(balancesDigest(referenceBalances(p)));
        }
      } finally {
        client.close();
        grid.child.kill('SIGCONT');
        for (const p of procs.reverse()) {
          if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
          await p.exited;
        }
        for (const a of agents) await (await detectFreezer('auto', { time: realRuntime(), scope: a.ready.nodeId })).cleanupScope();
      }
    });
  }, 300_000);
});
