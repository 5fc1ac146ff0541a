import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { withTmp } from '../helpers/tmp.js';
import { withProcs, kill9Agents } from '../helpers/procs.js';
import { untilCluster, untilGrid } from '../helpers/cluster.js';
import { expectLineFinished, expectSubBanksFinished } from '../helpers/bank.js';
import { deleteManifest, flipPageByte, truncatePageTable } from '../helpers/damage.js';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { GridClient } from '../../src/wire/grid-client.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { bankJobSpec } from '../../src/bank/job.js';
import { startAgent, uniqueNodeId } from '../helpers/agent.js';
import { untilJob } from '../helpers/bank.js';

// ARCHITECTURE §3 invariant 6 in a coordinated recovery: the newest epochs
// are damaged (a deleted manifest, a truncated page table, a flipped byte in
// a page) and a node, or a whole cluster, is lost. The recovery verifies the
// epoch it restores and walks back to the newest intact one — every node of
// the job on that same epoch — names each epoch it passed over and why,
// records what it restored, and the job ends with the failure-free result.
// Rounds are taken by hand (no periodic ones), so the epochs are known.

const NO_PERIODIC_ROUNDS_MS = 86_400_000;

describe('a coordinated recovery walks back past damaged epochs', () => {
  it('cluster node recovery: three damaged newest epochs, restored from the fourth newest on every node', async () => {
    const params = { accounts: 256, units: 4, opsPerUnit: 4_000, seed: 606 };
    await withTmp('walk-back-cluster', async (dir) => {
      await withProcs(dir, async (p) => {
        const c = await p.cluster('c1', []);
        const holders = [await c.addAgent(2), await c.addAgent(2)];
        await c.client.submitJob({ job: clusterBankSpec('bank', params, NO_PERIODIC_ROUNDS_MS) });
        const spare = await c.addAgent(4);
        for (let i = 1; i <= 5; i++) await c.client.checkpointJob({ jobId: 'bank' });
        expect((await c.client.status()).jobs[0]!.lastEpoch).toBe(5n);

        await deleteManifest(c.store, 'bank', 5n);
        await truncatePageTable(c.store, 'bank', 4n);
        await flipPageByte(c.store, 'bank', 3n);
        await kill9Agents([holders[0]!]);

        const s = await untilCluster(c.client, (x) => x.jobs[0]!.recoveries >= 1n || x.jobs[0]!.state === 'failed', 'the recovery');
        const job = s.jobs[0]!;
        expect(job.state, job.lastError).toBe('running');
        expect(job.lastEpoch).toBe(2n);
        expect(job.lastError).toMatch(/^recovered at epoch 2 after passing over epoch 5: manifest missing: .*epoch 4: .*page table.*; epoch 3: .*crc32c mismatch/);
        // Every node of the job loaded epoch 2.
        const nodes = new Set(job.placements.map((x) => x.nodeId));
        expect(nodes.has(spare.ready.nodeId)).toBe(true);
        for (const a of [holders[1]!, spare].filter((x) => nodes.has(x.ready.nodeId))) {
          const agent = new AgentClient(a.ready.grpc);
          expect((await agent.status()).jobs.find((j) => j.jobId === 'bank')!.lastEpoch).toBe(2n);
          agent.close();
        }

        const end = await untilCluster(c.client, (x) => x.jobs[0]!.state === 'completed' || x.jobs[0]!.state === 'failed', 'the end of the job');
        expect(end.jobs[0]!.state, end.jobs[0]!.lastError).toBe('completed');
        expect(end.jobs[0]!.lastEpoch).toBeGreaterThan(5n);
        await expectSubBanksFinished(c.store, 'bank', end.jobs[0]!.lastEpoch, params);
      });
    });
  }, 180_000);

  it('grid rollback: the newest line is damaged in a surviving cluster, every cluster rolls back to the line before', async () => {
    const params = { accounts: 256, units: 4, opsPerUnit: 6_000, seed: 707 };
    await withTmp('walk-back-grid', async (dir) => {
      await withProcs(dir, async (p) => {
        const gridProc = await p.spawn('grid', [
          '--data-dir', join(dir, 'grid'), '--heartbeat-interval-ms', '100', '--cluster-lease-ms', '1000', '--metrics-listen', 'none',
        ]);
        const grid = new GridClient(gridProc.ready.grpc);
        try {
          const ca = await p.cluster('ca', ['--grid', gridProc.ready.grpc]);
          await ca.addAgent(2);
          const cb = await p.cluster('cb', ['--grid', gridProc.ready.grpc]);
          await cb.addAgent(2);
          await untilGrid(grid, (s) => s.clusters.filter((x) => x.verdict === 'alive').length === 2, 'two clusters');
          await grid.submitGridJob({ job: clusterBankSpec('bank', params, NO_PERIODIC_ROUNDS_MS) });
          const cc = await p.cluster('cc', ['--grid', gridProc.ready.grpc]);
          await cc.addAgent(4);
          await untilGrid(grid, (s) => s.clusters.find((x) => x.clusterId === 'cc')?.verdict === 'alive', 'the spare cluster');
          for (let i = 1; i <= 3; i++) await grid.checkpointGridJob({ jobId: 'bank' });
          const before = (await grid.status()).jobs[0]!;
          expect(before.lines.map((l) => l.gridEpoch)).toEqual([1n, 2n, 3n]);

          await flipPageByte(cb.store, 'bank', 3n);
          ca.proc.child.kill('SIGKILL');
          await ca.proc.exited;

          const s = await untilGrid(grid, (x) => (x.jobs[0]?.recoveries ?? 0n) >= 1n || x.jobs[0]?.state === 'failed', 'the grid recovery', 60_000);
          const job = s.jobs[0]!;
          expect(job.state, job.lastError).toBe('running');
          expect(job.lastError).toMatch(/rolled back to line 2, passing over line 3: cluster cb: .*epoch 3 .*crc32c mismatch/);
          // The catalog's newest line is the one restored, and every cluster of the job stands at its epoch.
          expect(job.lines.map((l) => l.gridEpoch)).toEqual([1n, 2n]);
          expect(Object.values(job.clusters)).not.toContain('ca');
          expect((await cb.client.status()).jobs.find((j) => j.jobId === 'bank')!.lastEpoch).toBe(2n);
          // cb's own units and the units cc adopted from ca's store: every node loaded epoch 2.
          for (const a of [...cb.agents, ...cc.agents]) {
            const agent = new AgentClient(a.ready.grpc);
            expect((await agent.status()).jobs.find((j) => j.jobId === 'bank')!.lastEpoch, a.ready.nodeId).toBe(2n);
            agent.close();
          }

          const done = await untilGrid(grid, (x) => x.jobs[0]?.state === 'completed' || x.jobs[0]?.state === 'failed', 'the end of the job', 120_000);
          const end = done.jobs[0]!;
          expect(end.state, end.lastError).toBe('completed');
          await expectLineFinished(end.lines.at(-1)!, new Map([ca, cb, cc].map((c) => [c.proc.ready.clusterId!, c.store])), params);
        } finally {
          grid.close();
        }
      });
    });
  }, 240_000);

  it('standalone agent restore: the deleted manifest of the epoch it last committed is named, not passed over in silence', async () => {
    await withTmp('walk-back-agent', async (dir) => {
      const a = await startAgent(dir, { nodeId: uniqueNodeId('wb') });
      try {
        await a.client.startJob({ job: bankJobSpec('bank', { accounts: 256, units: 2, opsPerUnit: 50_000, seed: 9 }, 0) });
        await untilJob(a.client, 'bank', (j) => j.containers.length > 0);
        for (let i = 1; i <= 3; i++) expect((await a.client.checkpoint({ jobId: 'bank', full: false })).epoch!.epoch).toBe(BigInt(i));
        await deleteManifest(join(dir, 'store'), 'bank', 3n);
        const r = await a.client.restore({ jobId: 'bank', epoch: 0n });
        expect(r.epoch!.epoch).toBe(2n);
        expect(r.skipped.map((x) => x.epoch)).toEqual([3n]);
        expect(r.skipped[0]!.reason).toMatch(/^manifest missing: .*MANIFEST\.json does not exist/);
        await a.client.stopJob({ jobId: 'bank' });
      } finally {
        await a.stop();
      }
    });
  });
});
