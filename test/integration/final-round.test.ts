import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { withTmp } from '../helpers/tmp.js';
import { withProcs } from '../helpers/procs.js';
import { untilCluster, untilGrid } from '../helpers/cluster.js';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { listCommitted } from '../../src/store/index.js';
import { GridClient } from '../../src/wire/grid-client.js';

// A job is completed only when its end state is in a committed epoch. The
// store stops taking manifests (failpoint store.commit-fails, switched on
// while the job runs: a full or read-only store) before the units finish;
// the final round is retried a few times, then the job ends failed, saying
// its final state is not checkpointed — at the cluster and at the grid.

const params = { accounts: 256, units: 2, opsPerUnit: 4_000, seed: 31 };

async function failpoints(dir: string): Promise<{ env: NodeJS.ProcessEnv; on: () => Promise<void> }> {
  const fp = join(dir, 'failpoints');
  await mkdir(fp);
  return {
    env: { ...process.env, GRIDCKPT_FAILPOINTS: 'store.commit-fails=switch', GRIDCKPT_FAILPOINT_DIR: fp },
    on: () => writeFile(join(fp, 'store.commit-fails.on'), ''),
  };
}

/** The newest committed epoch holds a state before the end: some unit had ops left. */
async function expectEndNotInStore(store: string, epoch: bigint): Promise<void> {
  const newest = (await listCommitted(store, 'bank')).at(-1)!;
  expect(newest.epoch).toBe(epoch);
  const counters: number[] = [];
  for (let i = 0; i < params.units; i++) {
    counters.push(...(await bankFromEpoch(store, 'bank', epoch, { ...params, units: 1, seed: params.seed + i }, `bank-u${i}`)).counters);
  }
  expect(counters.some((k) => k < params.opsPerUnit), `counters at epoch ${epoch}: ${counters.join(', ')}`).toBe(true);
}

describe('the final round must commit for a job to be completed', () => {
  it('cluster: a store that takes no manifest any more ends the job failed, not completed', async () => {
    await withTmp('final-cluster', async (dir) => {
      const fp = await failpoints(dir);
      await withProcs(dir, async (p) => {
        const c = await p.cluster('c1', ['--checkpoint-interval-ms', '200'], fp.env);
        await c.addAgent(2);
        await c.client.submitJob({ job: clusterBankSpec('bank', params, 0) });
        await untilCluster(c.client, (s) => (s.jobs[0]?.roundsCommitted ?? 0n) >= 2n, 'two committed rounds');
        await fp.on();
        const end = await untilCluster(c.client, (s) => s.jobs[0]!.state === 'completed' || s.jobs[0]!.state === 'failed', 'the end of the job');
        const job = end.jobs[0]!;
        expect(job.state).toBe('failed');
        expect(job.lastError).toMatch(/final state is in no epoch/);
        expect(job.lastError).toMatch(/attempt 3: .*store\.commit-fails/);
        await expectEndNotInStore(c.store, job.lastEpoch);
      });
    });
  }, 120_000);

  it('grid: a cluster whose store takes no manifest any more ends the grid job failed, not completed', async () => {
    await withTmp('final-grid', async (dir) => {
      const fp = await failpoints(dir);
      await withProcs(dir, async (p) => {
        const gridProc = await p.spawn('grid', [
          '--data-dir', join(dir, 'grid'), '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '300', '--cluster-lease-ms', '1000', '--metrics-listen', 'none',
        ]);
        const grid = new GridClient(gridProc.ready.grpc);
        try {
          const ca = await p.cluster('ca', ['--grid', gridProc.ready.grpc]);
          await ca.addAgent(2);
          const cb = await p.cluster('cb', ['--grid', gridProc.ready.grpc], fp.env);
          await cb.addAgent(2);
          await untilGrid(grid, (s) => s.clusters.filter((x) => x.verdict === 'alive').length === 2, 'two clusters');
          const submitted = await grid.submitGridJob({ job: clusterBankSpec('bank', params, 0) });
          expect(new Set(Object.values(submitted.job!.clusters))).toEqual(new Set(['ca', 'cb']));
          await untilGrid(grid, (s) => (s.jobs[0]?.lines.length ?? 0) >= 2, 'two recovery lines');
          await fp.on();
          const end = await untilGrid(grid, (s) => s.jobs[0]?.state === 'completed' || s.jobs[0]?.state === 'failed', 'the end of the job', 120_000);
          const job = end.jobs[0]!;
          expect(job.state).toBe('failed');
          expect(job.lastError).toMatch(/final state is in no epoch/);
          expect(job.lastError).toMatch(/attempt 3: /);
          // The newest line holds a state before the end.
          const line = job.lines.at(-1)!;
          const u = Object.entries(line.unitClusters).find(([, c]) => c === 'cb')![0];
          const i = Number(u.slice(1));
          const image = await bankFromEpoch(cb.store, 'bank', line.clusterEpochs['cb']!, { ...params, units: 1, seed: params.seed + i }, `bank-u${i}`);
          expect(image.counters[0]).toBeLessThan(params.opsPerUnit);
        } finally {
          grid.close();
        }
      });
    });
  }, 180_000);
});
