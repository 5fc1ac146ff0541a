import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { existsSync, watch } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { spawnService, type AgentProcess } from '../helpers/services.js';
import { startEtcd } from '../helpers/etcd.js';
import { GridClient } from '../../src/wire/grid-client.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { referenceBalances, totalOf, expectedTotal } from '../../src/bank/model.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { untilCluster, untilGrid } from '../helpers/cluster.js';
import { uniqueNodeId } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';
import type { GridStatusResponse } from '../../src/gen/gridckpt/v1/grid.js';
import { realRuntime } from '../../src/wire/real-clients.js';

// Grid coordinator high availability on a real etcd (docs/grid-ha.md): three
// grid coordinators with --etcd, two clusters and their agents, every one a
// process, a bank job. kill -9 of the leader mid-job: a standby takes over
// within two lease periods and the job goes on. Then that leader is deposed
// while alive (stopped with SIGSTOP past its lease) with one of its calls
// held back by the failpoint grid.hold-call; the third grid takes over, and
// once the clusters have heard from it the held call is let go: the clusters
// refuse it (FAILED_PRECONDITION, counted). The job ends completed with the
// failure-free digest.

const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';
const LEASE_MS = 2_000;

interface Grid { name: string; proc: AgentProcess; client: GridClient; fpDir: string }

async function leaderOf(grids: Grid[], except: Set<string>): Promise<Grid> {
  // Each standby's Watch says when it leads (a member event); the first to lead wins.
  return Promise.any(grids.filter((g) => !except.has(g.name)).map(async (g) => {
    await untilGrid(g.client, (s) => s.role === 'leader', `${g.name} leading`, 30_000);
    return g;
  }));
}

function fileAppears(dir: string, name: string): Promise<void> {
  return new Promise((resolve) => {
    const w = watch(dir, () => {
      if (existsSync(join(dir, name))) {
        w.close();
        resolve();
      }
    });
    if (existsSync(join(dir, name))) {
      w.close();
      resolve();
    }
  });
}

async function checkResult(end: GridStatusResponse['jobs'][number], stores: Map<string, string>, params: { accounts: number; units: number; opsPerUnit: number; seed: number }): Promise<void> {
  const last = end.lines[end.lines.length - 1]!;
  const balances: bigint[] = [];
  const expected: bigint[] = [];
  for (let i = 0; i < params.units; i++) {
    const p = { ...params, units: 1, seed: params.seed + i };
    const c = last.unitClusters[`u${i}`]!;
    const image = await bankFromEpoch(stores.get(c)!, 'bank', last.clusterEpochs[c]!, p, `bank-u${i}`);
    expect(totalOf(image.balances)).toBe(expectedTotal(p));
    balances.push(...image.balances);
    expected.push(...referenceBalances(p));
  }
  expect(balancesDigest(balances)).toBe(balancesDigest(expected));
}

describe('grid HA on etcd', () => {
  it('kill -9 of the leader mid-job: a standby takes over within two leases, a deposed leader\'s late call is refused, the job ends with the failure-free digest', async () => {
    await withTmp('grid-ha', async (dir) => {
      const etcd = await startEtcd(dir);
      const procs: AgentProcess[] = [];
      const agents: AgentProcess[] = [];
      const grids: Grid[] = [];
      const clients: Array<{ close(): void }> = [];
      try {
        const startGrid = async (name: string): Promise<Grid> => {
          const fpDir = join(dir, `${name}-fp`);
          await mkdir(fpDir, { recursive: true });
          const proc = await spawnService('grid', [
            '--data-dir', join(dir, name), '--grid-id', 'ha', '--etcd', etcd.url, '--etcd-lease-ms', String(LEASE_MS),
            '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '300', '--cluster-lease-ms', '8000', '--metrics-listen', 'none',
          ], { ...process.env, GRIDCKPT_FAILPOINTS: 'grid.hold-call=hold', GRIDCKPT_FAILPOINT_DIR: fpDir }, logs);
          procs.push(proc);
          const client = new GridClient(proc.ready.grpc);
          clients.push(client);
          const g = { name, proc, client, fpDir };
          grids.push(g);
          return g;
        };
        const g1 = await startGrid('g1');
        await untilGrid(g1.client, (s) => s.role === 'leader', 'g1 leading', 30_000);
        await startGrid('g2');
        await startGrid('g3');
        for (const g of grids.slice(1)) expect((await g.client.status()).role).toBe('standby');
        const gridFlag = grids.map((g) => g.proc.ready.grpc).join(',');

        const stores = new Map<string, string>();
        const clusterClients: ClusterClient[] = [];
        for (const id of ['ca', 'cb']) {
          const store = join(dir, `${id}-store`);
          stores.set(id, store);
          const proc = await spawnService('cluster', [
            '--data-dir', join(dir, id), '--store-dir', store, '--cluster-id', id, '--grid', gridFlag, '--heartbeat-interval-ms', '100', '--metrics-listen', 'none',
          ], process.env, logs);
          procs.push(proc);
          for (let i = 1; i <= 2; i++) {
            const a = await spawnService('agent', [
              '--data-dir', join(dir, `${id}-n${i}`), '--node-id', uniqueNodeId(`${id}${i}`), '--store-dir', store,
              '--cluster', proc.ready.grpc, '--capacity', '4', '--metrics-listen', 'none',
            ], process.env, logs);
            procs.push(a);
            agents.push(a);
          }
          const cc = new ClusterClient(proc.ready.grpc);
          clusterClients.push(cc);
          clients.push(cc);
          await untilCluster(cc, (s) => s.nodes.filter((x) => x.verdict === 'alive').length === 2, `the agents of ${id}`);
        }
        await untilGrid(g1.client, (s) => s.clusters.filter((c) => c.verdict === 'alive').length === 2, 'two clusters at the leader');

        const params = { accounts: 256, units: 4, opsPerUnit: 12_000, seed: 77 };
        await g1.client.submitGridJob({ job: clusterBankSpec('bank', params, 0) });
        await untilGrid(g1.client, (s) => (s.jobs[0]?.lines.length ?? 0) >= 2, 'two recovery lines under g1');
        const term1 = (await g1.client.status()).leaderTerm;

        // 1. kill -9 of the leader: a standby leads within two lease periods.
        const killedAt = Date.now();
        g1.proc.child.kill('SIGKILL');
        await g1.proc.exited;
        const l2 = await leaderOf(grids, new Set(['g1']));
        const takeoverMs = Date.now() - killedAt;
        console.log(`grid HA: ${l2.name} took over ${takeoverMs} ms after kill -9 of the leader (lease ${LEASE_MS} ms)`);
        expect(takeoverMs).toBeLessThan(2 * LEASE_MS);
        const s2 = await l2.client.status();
        expect(s2.leaderTerm).toBeGreaterThan(term1);
        const lines1 = s2.jobs.find((j) => j.jobId === 'bank')!.lines.length;
        await untilGrid(l2.client, (s) => s.clusters.filter((c) => c.verdict === 'alive').length === 2 && (s.jobs[0]?.lines.length ?? 0) > lines1, `a new line under ${l2.name}`, 60_000);

        // 2. A call of this leader is held back; the leader is then deposed while alive (stopped past its lease).
        await writeFile(join(l2.fpDir, 'grid.hold-call.on'), '');
        await fileAppears(l2.fpDir, 'grid.hold-call.hit');
        l2.proc.child.kill('SIGSTOP');
        const l3 = await leaderOf(grids, new Set(['g1', l2.name]));
        const term3 = (await l3.client.status()).leaderTerm;
        expect(term3).toBeGreaterThan(s2.leaderTerm);
        // Both clusters have heard from the newer leader before the late call arrives.
        for (const cc of clusterClients) await untilCluster(cc, (s) => s.gridLeaderTerm === term3, 'the clusters hearing the new leader', 60_000);
        l2.proc.child.kill('SIGCONT');
        await writeFile(join(l2.fpDir, 'grid.hold-call.release'), '');
        const refused = await Promise.any(clusterClients.map((cc) => untilCluster(cc, (s) => s.staleGridCalls >= 1n, 'the late call refused', 30_000)));
        expect(refused.staleGridCalls).toBeGreaterThanOrEqual(1n);
        expect((await l2.client.status()).role).toBe('standby');

        // 3. The job ends under the third leader with the failure-free result.
        const done = await untilGrid(l3.client, (s) => s.jobs[0]?.state === 'completed' || s.jobs[0]?.state === 'failed', 'the end of the job', 240_000);
        const end = done.jobs[0]!;
        expect(end.state, end.lastError).toBe('completed');
        await checkResult(end, stores, params);
      } finally {
        for (const c of clients) c.close();
        for (const p of procs.reverse()) {
          if (p.child.exitCode === null && p.child.signalCode === null) {
            p.child.kill('SIGCONT');
            p.child.kill('SIGTERM');
          }
          await p.exited;
        }
        await etcd.stop();
        for (const a of agents) await (await detectFreezer('auto', { time: realRuntime(), scope: a.ready.nodeId })).cleanupScope();
      }
    });
  }, 300_000);
});
