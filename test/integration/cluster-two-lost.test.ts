import { describe, expect, it } from 'vitest';
import { withTmp } from '../helpers/tmp.js';
import { withProcs, kill9Agents } from '../helpers/procs.js';
import { untilCluster } from '../helpers/cluster.js';
import { expectSubBanksFinished } from '../helpers/bank.js';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';

// Two nodes lost close together: kill -9 of both nodes that hold a job's
// units, at once, with a spare that has room for all of them. The first
// failure verdict's recovery must not restore onto the second dead node
// (suspected, not yet failed): it re-plans when a target turns out dead, and
// the job ends on the spare with the failure-free result (invariant 5).

const params = { accounts: 512, units: 4, opsPerUnit: 3_000, seed: 123 };

describe('cluster: both unit holders killed at once', () => {
  it('recovers onto the spare instead of failing the job', async () => {
    await withTmp('two-lost', async (dir) => {
      await withProcs(dir, async (p) => {
        const c = await p.cluster('c1', ['--checkpoint-interval-ms', '200']);
        const holders = [await c.addAgent(2), await c.addAgent(2)];
        const submitted = await c.client.submitJob({ job: clusterBankSpec('bank', params, 0) });
        expect(new Set(submitted.job!.placements.map((x) => x.nodeId))).toEqual(new Set(holders.map((h) => h.ready.nodeId)));
        await untilCluster(c.client, (s) => (s.jobs[0]?.roundsCommitted ?? 0n) >= 2n, 'two committed rounds');
        const spare = await c.addAgent(4);

        await kill9Agents(holders);
        const end = await untilCluster(c.client, (s) => s.jobs[0]!.state === 'completed' || s.jobs[0]!.state === 'failed', 'the end of the job');
        const job = end.jobs[0]!;
        expect(job.state, job.lastError).toBe('completed');
        expect(job.recoveries).toBeGreaterThanOrEqual(1n);
        expect(job.placements.every((x) => x.nodeId === spare.ready.nodeId)).toBe(true);
        await expectSubBanksFinished(c.store, 'bank', job.lastEpoch, params);
      });
    });
  }, 120_000);
});
