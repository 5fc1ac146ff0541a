import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { join } from 'node:path';
import { AgentClient } from '../../src/wire/agent-client.js';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { referenceBalances, totalOf, expectedTotal } from '../../src/bank/model.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { listCommitted } from '../../src/store/index.js';
import { withTmp } from '../helpers/tmp.js';
import { untilAgent } from '../helpers/agent.js';
import { withProcs } from '../helpers/procs.js';
import { untilCluster as until } from '../helpers/cluster.js';

// A cluster coordinator and two node agents as real processes, against what
// issue 8 found: a registration with a live node's id and an implausible
// incarnation cannot take the node over; a submit its agent refuses fails
// the job at once (INVALID_ARGUMENT) and a corrected one is taken; and a
// unit killed with kill -9 follows the job's restart policy — restored from
// the last epoch (ending with the failure-free digest), or the job failed.

const params = { accounts: 1024, units: 2, opsPerUnit: 3000, seed: 77 };

async function refusal(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  const err = await p.then(() => null, (e: unknown) => e as { code: number; details: string });
  if (err === null) throw new Error('accepted');
  return { code: err.code, details: err.details };
}

/** kill -9 of one running unit of the job, on whichever agent runs it; returns its pid. */
async function killOneUnit(agentAddresses: string[], jobId: string): Promise<number> {
  for (const address of agentAddresses) {
    const c = new AgentClient(address);
    const unit = (await c.status()).jobs.find((j) => j.jobId === jobId && j.state === 'running')?.units.find((u) => u.state === 'running');
    c.close();
    if (unit) {
      process.kill(unit.pid, 'SIGKILL');
      return unit.pid;
    }
  }
  throw new Error(`no running unit of ${jobId}`);
}

describe('cluster: hostile registrations, refused submits and the restart policy', () => {
  it('keeps its live node, fails a refused submit at once, restores a job whose unit was killed and fails one whose policy says so', async () => {
    await withTmp('unit-failure', async (dir) => {
      await withProcs(dir, async (p) => {
        const c = await p.cluster('c1', ['--checkpoint-interval-ms', '200']);
        const a1 = await c.addAgent(4);
        const a2 = await c.addAgent(4);
        const agents = [a1.ready.grpc, a2.ready.grpc];

        // 6: a registration with a live node's id and a far-off incarnation is refused; the node keeps its address.
        const before = (await c.client.status()).nodes.find((n) => n.nodeId === a1.ready.nodeId)!;
        for (const incarnation of [2n ** 64n - 1n, before.incarnation + 1_001n]) {
          const r = await refusal(c.client.registerNode({ nodeId: a1.ready.nodeId, incarnation, address: '127.0.0.1:9', capacityUnits: 4, labels: {} }));
          expect(r.code).toBe(status.FAILED_PRECONDITION);
        }
        const after = (await c.client.status()).nodes.find((n) => n.nodeId === a1.ready.nodeId)!;
        expect([after.incarnation, after.address, after.verdict]).toEqual([before.incarnation, before.address, 'alive']);

        // 7: a submit the agents refuse (no such binary) fails at once, and the id is free again.
        const bad = clusterBankSpec('bank', params, 0);
        const refused = await refusal(c.client.submitJob({ job: { ...bad, units: bad.units.map((u) => ({ ...u, command: '/no/such/node' })) } }));
        expect([refused.code, refused.details]).toEqual([status.INVALID_ARGUMENT, expect.stringContaining('"/no/such/node" does not exist')]);
        expect((await c.client.status()).jobs.find((j) => j.jobId === 'bank')?.state).toBe('failed');

        // 10, restore (the default policy): the corrected job runs on both nodes; kill -9 of a unit rolls it back.
        const submitted = await c.client.submitJob({ job: clusterBankSpec('bank', params, 0) });
        expect(new Set(submitted.job!.placements.map((x) => x.nodeId)).size).toBe(2);
        await until(c.client, (s) => (s.jobs.find((j) => j.jobId === 'bank')?.roundsCommitted ?? 0n) >= 1n, 'a committed round');
        await killOneUnit(agents, 'bank');
        const done = await until(c.client, (s) => ['completed', 'failed'].includes(s.jobs.find((j) => j.jobId === 'bank')!.state), 'the bank job to end');
        const job = done.jobs.find((j) => j.jobId === 'bank')!;
        expect([job.state, job.recoveries]).toEqual(['completed', 1n]);
        const last = (await listCommitted(c.store, 'bank')).at(-1)!;
        for (let i = 0; i < params.units; i++) {
          const sub = { ...params, units: 1, seed: params.seed + i };
          const image = await bankFromEpoch(c.store, 'bank', last.epoch, sub, `bank-u${i}`);
          expect(image.counters).toEqual([params.opsPerUnit]);
          expect(totalOf(image.balances)).toBe(expectedTotal(sub));
          expect(balancesDigest(image.balances)).toBe(balancesDigest(referenceBalances(sub)));
        }

        // 10, fail: the same kill fails a job whose policy says so, and its other units are stopped.
        const sleepers = { jobId: 'strict', units: ['a', 'b', 'c'].map((unitId) => ({ unitId, command: '/bin/sleep', args: ['600'], env: {} })), checkpointIntervalMs: 0, fullEvery: 0 };
        await c.client.submitJob({ job: sleepers, restartPolicy: { onUnitFailure: 'fail', maxRestarts: 0 } });
        await killOneUnit(agents, 'strict');
        const failed = await until(c.client, (s) => s.jobs.find((j) => j.jobId === 'strict')!.state === 'failed', 'the strict job to fail');
        expect(failed.jobs.find((j) => j.jobId === 'strict')!.lastError).toMatch(/a unit of job strict failed on .*; its restart policy is to fail/);
        for (const address of agents) {
          const ac = new AgentClient(address);
          try {
            await untilAgent(ac, (st) => st.jobs.filter((j) => j.jobId === 'strict').flatMap((j) => j.units).every((u) => u.state === 'exited'), `the strict job's units stopped on ${address}`);
          } finally {
            ac.close();
          }
        }
      });
    });
  }, 180_000);
});
