import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { spawnService, type AgentProcess } from '../helpers/services.js';
import { GridClient } from '../../src/wire/grid-client.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { referenceBalances, totalOf, expectedTotal } from '../../src/bank/model.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { untilCluster, untilGrid } from '../helpers/cluster.js';
import { uniqueNodeId, untilAgent } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';
import type { GridStatusResponse } from '../../src/gen/gridckpt/v1/grid.js';
import { realRuntime } from '../../src/wire/real-clients.js';
import { alive } from '../helpers/pid.js';

// The loss of a whole cluster coordinator (kill -9), every tier a real
// process. The grid detects it, waits until the lost cluster's job leases
// (and its agents' leases under them) have lapsed — its agents kill their
// units when nobody renews them — then moves the lost units to the alive
// cluster with the most room, their pages read from the lost cluster's
// store, rolls the whole job back to its last recovery line, and the job
// ends with the failure-free result. With no room left, the job is
// reported failed, saying why.

const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';

interface Cluster {
  id: string;
  store: string;
  proc: AgentProcess;
  agents: AgentProcess[];
}


type AddCluster = (id: string, agents: number, capacity: number, env?: NodeJS.ProcessEnv) => Promise<Cluster>;

async function withGrid(dir: string, fn: (grid: AgentProcess, addCluster: AddCluster) => Promise<void>): Promise<void> {
  const procs: AgentProcess[] = [];
  const agents: AgentProcess[] = [];
  const grid = await spawnService('grid', [
    '--data-dir', join(dir, 'grid'), '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '300',
    '--cluster-lease-ms', '1000', '--metrics-listen', 'none',
  ], process.env, logs);
  procs.push(grid);
  const addCluster: AddCluster = async (id, n, capacity, env = process.env) => {
    const store = join(dir, `${id}-store`);
    const proc = await spawnService('cluster', [
      '--data-dir', join(dir, id), '--store-dir', store, '--cluster-id', id, '--grid', grid.ready.grpc,
      '--heartbeat-interval-ms', '100', '--metrics-listen', 'none',
    ], env, logs);
    procs.push(proc);
    const mine: AgentProcess[] = [];
    for (let i = 1; i <= n; i++) {
      const a = await spawnService('agent', [
        '--data-dir', join(dir, `${id}-n${i}`), '--node-id', uniqueNodeId(`${id}${i}`), '--store-dir', store,
        '--cluster', proc.ready.grpc, '--capacity', String(capacity), '--metrics-listen', 'none',
      ], process.env, logs);
      procs.push(a);
      agents.push(a);
      mine.push(a);
    }
    const cc = new ClusterClient(proc.ready.grpc);
    await untilCluster(cc, (s) => s.nodes.filter((x) => x.verdict === 'alive').length === n, `the agents of ${id}`);
    cc.close();
    return { id, store, proc, agents: mine };
  };
  try {
    await fn(grid, addCluster);
  } finally {
    for (const p of procs.reverse()) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
      await p.exited;
    }
    for (const a of agents) await (await detectFreezer('auto', { time: realRuntime(), scope: a.ready.nodeId })).cleanupScope();
  }
}

/** Every line consistent, and the last one holds the failure-free result. */
async function checkResult(end: { lines: GridStatusResponse['jobs'][number]['lines'] }, stores: Map<string, string>, params: { accounts: number; units: number; opsPerUnit: number; seed: number }): Promise<void> {
  const last = end.lines[end.lines.length - 1]!;
  const balances: bigint[] = [];
  const expected: bigint[] = [];
  for (let i = 0; i < params.units; i++) {
    const p = { ...params, units: 1, seed: params.seed + i };
    for (const line of end.lines) {
      const c = line.unitClusters[`u${i}`]!;
      const image = await bankFromEpoch(stores.get(c)!, 'bank', line.clusterEpochs[c]!, p, `bank-u${i}`);
      expect(totalOf(image.balances)).toBe(expectedTotal(p));
    }
    const c = last.unitClusters[`u${i}`]!;
    balances.push(...(await bankFromEpoch(stores.get(c)!, 'bank', last.clusterEpochs[c]!, p, `bank-u${i}`)).balances);
    expected.push(...referenceBalances(p));
  }
  expect(balancesDigest(balances)).toBe(balancesDigest(expected));
}

async function unitPids(agents: AgentProcess[]): Promise<Array<{ agent: AgentClient; pids: number[] }>> {
  const out: Array<{ agent: AgentClient; pids: number[] }> = [];
  for (const a of agents) {
    const agent = new AgentClient(a.ready.grpc);
    out.push({ agent, pids: (await agent.status()).jobs.flatMap((j) => j.units.filter((u) => u.state !== 'exited').map((u) => u.pid)) });
  }
  return out;
}

describe('grid: the loss of a cluster coordinator', () => {
  it('kill -9 of a cluster: detected, its units fenced, moved to the cluster with room, failure-free digest', async () => {
    await withTmp('grid-loss', async (dir) => {
      await withGrid(dir, async (gridProc, addCluster) => {
        const grid = new GridClient(gridProc.ready.grpc);
        try {
          const ca = await addCluster('ca', 2, 4);
          const cb = await addCluster('cb', 2, 4);
          await untilGrid(grid, (s) => s.clusters.filter((c) => c.verdict === 'alive').length === 2, 'two clusters');
          const params = { accounts: 512, units: 4, opsPerUnit: 5_000, seed: 4242 };
          const submitted = await grid.submitGridJob({ job: clusterBankSpec('bank', params, 0) });
          expect(new Set(Object.values(submitted.job!.clusters))).toEqual(new Set(['ca', 'cb']));
          await untilGrid(grid, (s) => (s.jobs[0]?.lines.length ?? 0) >= 2, 'two recovery lines');
          // A spare cluster with more room than cb has left: the lost units go there.
          const cc = await addCluster('cc', 1, 8);
          await untilGrid(grid, (s) => s.clusters.find((c) => c.clusterId === 'cc')?.verdict === 'alive', 'the spare cluster');

          // The units the lost cluster's agents run, which must die by lease.
          const victims = await unitPids(ca.agents);
          expect(victims.flatMap((v) => v.pids).length).toBeGreaterThan(0);
          const killedAt = performance.now();
          ca.proc.child.kill('SIGKILL');
          await ca.proc.exited;

          await untilGrid(grid, (s) => s.clusters.find((c) => c.clusterId === 'ca')?.verdict === 'failed', 'the failure verdict', 10_000);
          const detectionMs = performance.now() - killedAt;
          expect(detectionMs).toBeLessThan(2_000);
          const recovered = await untilGrid(grid, (s) => (s.jobs[0]?.recoveries ?? 0n) >= 1n, 'the grid recovery', 60_000);
          const job = recovered.jobs[0]!;
          expect(Object.values(job.clusters)).not.toContain('ca');
          const movedUnits = Object.entries(submitted.job!.clusters).filter(([, c]) => c === 'ca').map(([u]) => u);
          for (const u of movedUnits) expect(job.clusters[u]).toBe('cc');
          expect(recovered.recoveries).toBe(1n);

          // Fencing: by the time the units run on cc, those of ca's agents are dead and their job fenced.
          for (const v of victims) {
            const s = await v.agent.status();
            const j = s.jobs.find((x) => x.jobId === 'bank');
            if (v.pids.length > 0) {
              expect(j?.state).toBe('fenced');
              expect(j?.lastError).toMatch(/lease lapsed/);
            }
            for (const pid of v.pids) expect(alive(pid)).toBe(false);
            v.agent.close();
          }
          const ccClient = new ClusterClient(cc.proc.ready.grpc);
          const ccJob = (await ccClient.status()).jobs.find((j) => j.jobId === 'bank');
          ccClient.close();
          expect(ccJob?.gridManaged).toBe(true);
          expect(ccJob?.placements.map((p) => p.unitId).sort()).toEqual(movedUnits.sort());

          const done = await untilGrid(grid, (s) => s.jobs[0]?.state === 'completed' || s.jobs[0]?.state === 'failed', 'the end of the job', 240_000);
          const end = done.jobs[0]!;
          expect(end.state, end.lastError).toBe('completed');
          const stores = new Map([ca, cb, cc].map((c) => [c.id, c.store]));
          // Every line after the recovery names cc, and each sub-bank is consistent at every line.
          const last = end.lines[end.lines.length - 1]!;
          expect(Object.keys(last.clusterEpochs).sort()).toEqual(['cb', 'cc']);
          await checkResult(end, stores, params);
        } finally {
          grid.close();
        }
      });
    });
  }, 180_000); // every tier as processes, a lease wait, and a bank job run to its end

  it('a cluster cut off from the grid (alive, its agents fine) fences its units before the grid runs them elsewhere, and stays out when the link heals', async () => {
    await withTmp('grid-partition', async (dir) => {
      const fp = join(dir, 'failpoints');
      await mkdir(fp);
      const cut = join(fp, 'cluster.grid-link.on');
      await withGrid(dir, async (gridProc, addCluster) => {
        const grid = new GridClient(gridProc.ready.grpc);
        try {
          const ca = await addCluster('ca', 2, 4, { ...process.env, GRIDCKPT_FAILPOINTS: 'cluster.grid-link=switch', GRIDCKPT_FAILPOINT_DIR: fp });
          const cb = await addCluster('cb', 2, 4);
          await untilGrid(grid, (s) => s.clusters.filter((c) => c.verdict === 'alive').length === 2, 'two clusters');
          const params = { accounts: 512, units: 4, opsPerUnit: 5_000, seed: 99 };
          const submitted = await grid.submitGridJob({ job: clusterBankSpec('bank', params, 0) });
          await untilGrid(grid, (s) => (s.jobs[0]?.lines.length ?? 0) >= 2, 'two recovery lines');
          const victims = await unitPids(ca.agents);
          expect(victims.flatMap((v) => v.pids).length).toBeGreaterThan(0);

          await writeFile(cut, ''); // the partition: ca's heartbeats to the grid fail from now on
          await untilGrid(grid, (s) => s.clusters.find((c) => c.clusterId === 'ca')?.verdict === 'failed', 'the failure verdict', 10_000);
          const recovered = await untilGrid(grid, (s) => (s.jobs[0]?.recoveries ?? 0n) >= 1n, 'the grid recovery', 60_000);
          const movedUnits = Object.entries(submitted.job!.clusters).filter(([, c]) => c === 'ca').map(([u]) => u);
          for (const u of movedUnits) expect(recovered.jobs[0]!.clusters[u]).toBe('cb');
          // By now ca, still alive, has fenced its share: its units are dead.
          const caClient = new ClusterClient(ca.proc.ready.grpc);
          const caJob = (await caClient.status()).jobs.find((j) => j.jobId === 'bank')!;
          expect(caJob.state).toBe('fenced');
          expect(caJob.lastError).toMatch(/grid's lease/);
          for (const v of victims) {
            for (const pid of v.pids) expect(alive(pid)).toBe(false);
            const j = (await v.agent.status()).jobs.find((x) => x.jobId === 'bank');
            if (v.pids.length > 0) expect(['stopped', 'fenced']).toContain(j?.state);
            v.agent.close();
          }

          await rm(cut); // the link heals: ca registers again, and gets nothing of the job back
          await untilGrid(grid, (s) => s.clusters.find((c) => c.clusterId === 'ca')?.verdict === 'alive', 'ca to register again', 10_000);
          const done = await untilGrid(grid, (s) => s.jobs[0]?.state === 'completed' || s.jobs[0]?.state === 'failed', 'the end of the job', 240_000);
          expect(done.jobs[0]!.state, done.jobs[0]!.lastError).toBe('completed');
          expect((await caClient.status()).jobs.find((j) => j.jobId === 'bank')!.state).toBe('fenced');
          caClient.close();
          // ca is a member again: its heartbeats are accepted (not refused into re-registering forever).
          const caNow = done.clusters.find((c) => c.clusterId === 'ca')!;
          expect(caNow.verdict).toBe('alive');
          expect(caNow.heartbeatAgeMs).toBeLessThan(1_000);
          expect(done.failuresDetected).toBe(1n);
          await checkResult(done.jobs[0]!, new Map([ca, cb].map((c) => [c.id, c.store])), params);
        } finally {
          grid.close();
        }
      });
    });
  }, 180_000); // every tier as processes, a lease wait, and a bank job run to its end

  it('with no room left on the alive clusters, the job is reported failed and says why', async () => {
    await withTmp('grid-noroom', async (dir) => {
      await withGrid(dir, async (gridProc, addCluster) => {
        const grid = new GridClient(gridProc.ready.grpc);
        try {
          const ca = await addCluster('ca', 1, 2);
          const cb = await addCluster('cb', 1, 2);
          await untilGrid(grid, (s) => s.clusters.filter((c) => c.verdict === 'alive').length === 2, 'two clusters');
          await grid.submitGridJob({ job: clusterBankSpec('bank', { accounts: 256, units: 4, opsPerUnit: 50_000, seed: 7 }, 0) });
          await untilGrid(grid, (s) => (s.jobs[0]?.lines.length ?? 0) >= 1, 'a recovery line');
          ca.proc.child.kill('SIGKILL');
          await ca.proc.exited;
          const s = await untilGrid(grid, (x) => x.jobs[0]?.state === 'failed', 'the job to be reported failed', 30_000);
          expect(s.clusters.find((c) => c.clusterId === 'ca')?.verdict).toBe('failed');
          expect(s.jobs[0]!.lastError).toMatch(/no alive cluster has room for the 2 units of lost cluster ca \(the most room is 0 on cb\)/);
          // The grid stops the failed job's other half (and no longer renews its lease): cb runs none of it unmanaged.
          const cbClient = new ClusterClient(cb.proc.ready.grpc);
          const ended = await untilCluster(cbClient, (x) => {
            const j = x.jobs.find((y) => y.jobId === 'bank');
            return (j?.state === 'stopped' || j?.state === 'fenced') && x.nodes.every((n) => n.placedUnits === 0);
          }, 'cb to stop the job', 30_000);
          cbClient.close();
          // Its agents end the units (the cluster's stop is best effort; each agent's own view is the proof).
          for (const a of cb.agents) {
            const agent = new AgentClient(a.ready.grpc);
            await untilAgent(agent, (x) => x.jobs.every((j) => j.units.every((u) => u.state === 'exited')), `the units on ${a.ready.nodeId} to end`, 30_000);
            agent.close();
          }
          expect(ended.jobs.find((j) => j.jobId === 'bank')!.gridManaged).toBe(true);
        } finally {
          grid.close();
        }
      });
    });
  }, 180_000); // every tier as processes, a lease wait, and a bank job run to its end
});
