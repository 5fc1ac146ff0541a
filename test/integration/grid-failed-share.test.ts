import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { withTmp } from '../helpers/tmp.js';
import { withProcs, kill9Agents } from '../helpers/procs.js';
import { untilCluster, untilGrid } from '../helpers/cluster.js';
import { expectLineFinished } from '../helpers/bank.js';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { GridClient } from '../../src/wire/grid-client.js';

// A cluster that cannot recover its share of a grid job (kill -9 of both its
// nodes, no spare) reports the share failed. The grid treats that share as
// lost, like a lost cluster's: once the share's leases have lapsed, its units
// move to the cluster with room, their pages read from the failed cluster's
// store, the job rolls back to its line, and ends with the failure-free
// result — instead of running rounds against the failed share forever.

const params = { accounts: 256, units: 4, opsPerUnit: 3_000, seed: 5150 };

describe('grid: a cluster share that failed', () => {
  it('is recovered like a lost share, on another cluster', async () => {
    await withTmp('grid-failed-share', async (dir) => {
      await withProcs(dir, async (p) => {
        const gridProc = await p.spawn('grid', [
          '--data-dir', join(dir, 'grid'), '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '300', '--cluster-lease-ms', '1000', '--metrics-listen', 'none',
        ]);
        const grid = new GridClient(gridProc.ready.grpc);
        try {
          const ca = await p.cluster('ca', ['--grid', gridProc.ready.grpc]);
          const caNodes = [await ca.addAgent(1), await ca.addAgent(1)];
          const cb = await p.cluster('cb', ['--grid', gridProc.ready.grpc]);
          await cb.addAgent(2);
          await untilGrid(grid, (s) => s.clusters.filter((x) => x.verdict === 'alive').length === 2, 'two clusters');
          const submitted = await grid.submitGridJob({ job: clusterBankSpec('bank', params, 0) });
          const onCa = Object.entries(submitted.job!.clusters).filter(([, c]) => c === 'ca').map(([u]) => u).sort();
          expect(onCa).toHaveLength(2);
          await untilGrid(grid, (s) => (s.jobs[0]?.lines.length ?? 0) >= 2, 'two recovery lines');
          const cc = await p.cluster('cc', ['--grid', gridProc.ready.grpc]);
          await cc.addAgent(4);
          await untilGrid(grid, (s) => s.clusters.find((x) => x.clusterId === 'cc')?.verdict === 'alive', 'the spare cluster');

          await kill9Agents(caNodes);
          const failed = await untilCluster(ca.client, (s) => s.jobs[0]?.state === 'failed', 'ca to fail its share', 30_000);
          expect(failed.jobs[0]!.lastError).toMatch(/no alive node has room/);

          const recovered = await untilGrid(grid, (s) => (s.jobs[0]?.recoveries ?? 0n) >= 1n || s.jobs[0]?.state === 'failed', 'the grid to recover the share', 60_000);
          const job = recovered.jobs[0]!;
          expect(job.state, job.lastError).not.toBe('failed');
          for (const u of onCa) expect(job.clusters[u]).toBe('cc');

          const done = await untilGrid(grid, (s) => s.jobs[0]?.state === 'completed' || s.jobs[0]?.state === 'failed', 'the end of the job', 120_000);
          const end = done.jobs[0]!;
          expect(end.state, end.lastError).toBe('completed');
          expect(Object.keys(end.lines.at(-1)!.clusterEpochs).sort()).toEqual(['cb', 'cc']);
          await expectLineFinished(end.lines.at(-1)!, new Map([ca, cb, cc].map((c) => [c.proc.ready.clusterId!, c.store])), params);
        } finally {
          grid.close();
        }
      });
    });
  }, 240_000);
});
