import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { spawnService, type AgentProcess } from '../helpers/services.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { GridClient } from '../../src/wire/grid-client.js';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { referenceBalances } from '../../src/bank/model.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { realRuntime } from '../../src/wire/real-clients.js';
import { untilAgent, uniqueNodeId } from '../helpers/agent.js';
import { untilCluster, untilGrid } from '../helpers/cluster.js';
import { withTmp } from '../helpers/tmp.js';
import { alive } from '../helpers/pid.js';
import { run } from './cli-run.js';

// Job control at the cluster and grid tiers, every tier a real process and
// the operator's CLI: `gridckpt job cancel|delete|restore --cluster|--grid`.

const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';

/** A cluster with n agents (and a grid above it when `grid` is given); stops and cleans up after fn. */
async function withCluster(dir: string, n: number, grid: string | null, fn: (cluster: AgentProcess, agents: AgentProcess[], store: string) => Promise<void>): Promise<void> {
  const procs: AgentProcess[] = [];
  const store = join(dir, 'store');
  try {
    const cluster = await spawnService('cluster', [
      '--data-dir', join(dir, 'cluster'), '--store-dir', store, '--cluster-id', 'ca', '--heartbeat-interval-ms', '100', '--metrics-listen', 'none',
      ...(grid ? ['--grid', grid] : []),
    ], process.env, logs);
    procs.push(cluster);
    const agents: AgentProcess[] = [];
    for (let i = 1; i <= n; i++) {
      agents.push(await spawnService('agent', [
        '--data-dir', join(dir, `n${i}`), '--node-id', uniqueNodeId(`jct${i}`), '--store-dir', store, '--cluster', cluster.ready.grpc, '--capacity', '4', '--metrics-listen', 'none',
      ], process.env, logs));
    }
    procs.push(...agents);
    const cc = new ClusterClient(cluster.ready.grpc);
    await untilCluster(cc, (s) => s.nodes.filter((x) => x.verdict === 'alive').length === n, 'the agents');
    cc.close();
    await fn(cluster, agents, store);
  } finally {
    for (const p of procs.reverse()) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
      await p.exited;
    }
    for (const p of procs) if (p.ready.nodeId) await (await detectFreezer('auto', { time: realRuntime(), scope: p.ready.nodeId })).cleanupScope();
  }
}

/** The running units' pids of a job on each agent. */
async function pidsOf(agents: AgentProcess[], jobId: string): Promise<number[]> {
  const out: number[] = [];
  for (const a of agents) {
    const c = new AgentClient(a.ready.grpc);
    const s = await c.status();
    out.push(...(s.jobs.find((j) => j.jobId === jobId)?.units.filter((u) => u.state !== 'exited').map((u) => u.pid) ?? []));
    c.close();
  }
  return out;
}

/** Waits until no agent runs a unit of the job (the stops reach the agents after the cluster's answer). */
async function untilStopped(agents: AgentProcess[], jobId: string): Promise<void> {
  for (const a of agents) {
    const c = new AgentClient(a.ready.grpc);
    await untilAgent(c, (s) => !s.jobs.some((j) => j.jobId === jobId && j.state === 'running'), `job ${jobId} stopped on ${a.ready.nodeId}`);
    c.close();
  }
}

const sleepers = (jobId: string) => ({
  jobId, checkpointIntervalMs: 0, fullEvery: 0,
  units: ['s0', 's1'].map((unitId) => ({ unitId, command: '/bin/sleep', args: ['600'], env: {} })),
});

describe('gridckpt job … --cluster', () => {
  it('cancel stops every node\'s units and keeps the epochs; restore (newest, or named) runs them again; delete forgets the job and a job under its id numbers above its epochs', async () => {
    await withTmp('ops-jobctl-cluster', async (dir) => {
      await withCluster(dir, 2, null, async (cluster, agents) => {
        const at = ['--cluster', cluster.ready.grpc];
        const cc = new ClusterClient(cluster.ready.grpc);
        try {
          await cc.submitJob({ job: sleepers('jc') });
          expect((await cc.checkpointJob({ jobId: 'jc' })).epoch!.epoch).toBe(1n);
          expect((await cc.checkpointJob({ jobId: 'jc' })).epoch!.epoch).toBe(2n);
          const pids = await pidsOf(agents, 'jc');
          expect(pids).toHaveLength(2);

          const cancel = await run(['job', 'cancel', 'jc', ...at, '--json']);
          expect(cancel.code, cancel.err).toBe(0);
          expect(JSON.parse(cancel.out)).toMatchObject({ state: 'stopped', unconfirmedNodes: [] });
          // Answered once every node answered its stop: the units are gone by then.
          for (const pid of pids) expect(alive(pid), `unit pid ${pid}`).toBe(false);
          expect((await cc.status()).jobs.find((j) => j.jobId === 'jc')!.state).toBe('stopped');

          // A restore of an epoch that is not committed changes nothing.
          const bad = await run(['job', 'restore', 'jc', ...at, '--epoch', '999']);
          expect(bad.code).toBe(1);
          expect(bad.err).toMatch(/NOT_FOUND.*epoch 999 of job jc is not a committed epoch in cluster ca \(committed: 1, 2\)/);

          const restore = await run(['job', 'restore', 'jc', ...at]);
          expect(restore.code, restore.err).toBe(0);
          expect(restore.out).toMatch(/^job jc restored in cluster .* from epoch 2; units running/);
          expect(await pidsOf(agents, 'jc')).toHaveLength(2);
          const older = await run(['job', 'restore', 'jc', ...at, '--epoch', '1', '--json']);
          expect(older.code, older.err).toBe(0);
          expect(JSON.parse(older.out)).toMatchObject({ state: 'running', epoch: '1' });

          const running = await pidsOf(agents, 'jc');
          const del = await run(['job', 'delete', 'jc', ...at]);
          expect(del.code, del.err).toBe(0);
          expect(del.out).toMatch(/^job jc deleted in cluster .*; its epochs stay in the store/);
          for (const pid of running) expect(alive(pid)).toBe(false);
          expect((await cc.status()).jobs.map((j) => j.jobId)).toEqual([]);
          const again = await run(['job', 'delete', 'jc', ...at]);
          expect(again.code).toBe(1);
          expect(again.err).toMatch(/NOT_FOUND.*unknown job "jc"/);

          // The same id again: its epochs go on above every one the deleted job reserved (64 at a time).
          await cc.submitJob({ job: sleepers('jc') });
          expect((await cc.checkpointJob({ jobId: 'jc' })).epoch!.epoch).toBe(65n);
        } finally {
          cc.close();
        }
      });
    });
  }, 120_000);

  it('a grid job\'s share is the grid\'s to control: refused FAILED_PRECONDITION naming --grid', async () => {
    await withTmp('ops-jobctl-share', async (dir) => {
      const grid = await spawnService('grid', ['--data-dir', join(dir, 'grid'), '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '60000', '--metrics-listen', 'none'], process.env, logs);
      try {
        await withCluster(dir, 1, grid.ready.grpc, async (cluster) => {
          const gc = new GridClient(grid.ready.grpc);
          await untilGrid(gc, (s) => s.clusters.some((c) => c.verdict === 'alive'), 'the cluster');
          await gc.submitGridJob({ job: sleepers('gj') });
          gc.close();
          const r = await run(['job', 'cancel', 'gj', '--cluster', cluster.ready.grpc]);
          expect(r.code).toBe(1);
          expect(r.err).toMatch(/FAILED_PRECONDITION.*job gj is grid-managed: control it at the grid \(gridckpt job cancel --grid ADDR gj\)/);
        });
      } finally {
        grid.child.kill('SIGTERM');
        await grid.exited;
      }
    });
  }, 120_000);
});

describe('gridckpt job … --grid', () => {
  it('cancel stops every share mid-job; restore brings the job back from its newest line and it ends with the failure-free result; delete forgets it and its id numbers on above', async () => {
    await withTmp('ops-jobctl-grid', async (dir) => {
      const grid = await spawnService('grid', ['--data-dir', join(dir, 'grid'), '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '300', '--cluster-lease-ms', '1000', '--metrics-listen', 'none'], process.env, logs);
      try {
        await withCluster(dir, 2, grid.ready.grpc, async (_cluster, agents, store) => {
          const gc = new GridClient(grid.ready.grpc);
          const at = ['--grid', grid.ready.grpc];
          try {
            await untilGrid(gc, (s) => s.clusters.some((c) => c.verdict === 'alive'), 'the cluster');
            const params = { accounts: 256, units: 2, opsPerUnit: 8_000, seed: 41 };
            await gc.submitGridJob({ job: clusterBankSpec('bank', params, 0) });
            await untilGrid(gc, (s) => (s.jobs[0]?.lines.length ?? 0) >= 2, 'two recovery lines');

            const cancel = await run(['job', 'cancel', 'bank', ...at, '--json']);
            expect(cancel.code, cancel.err).toBe(0);
            expect(JSON.parse(cancel.out)).toMatchObject({ state: 'stopped', unconfirmedClusters: [] });
            await untilStopped(agents, 'bank');
            const stopped = (await gc.status()).jobs[0]!;
            expect(stopped.state).toBe('stopped');
            const newest = stopped.lines.at(-1)!.gridEpoch;

            const restore = await run(['job', 'restore', 'bank', ...at, '--json']);
            expect(restore.code, restore.err).toBe(0);
            expect(JSON.parse(restore.out)).toMatchObject({ state: 'running', gridEpoch: String(newest) });
            const end = await untilGrid(gc, (s) => s.jobs[0]?.state === 'completed', 'the job completed', 120_000);
            const last = end.jobs[0]!.lines.at(-1)!;
            for (let i = 0; i < params.units; i++) {
              const p = { ...params, units: 1, seed: params.seed + i };
              const image = await bankFromEpoch(store, 'bank', last.clusterEpochs['ca']!, p, `bank-u${i}`);
              expect(balancesDigest(image.balances)).toBe(balancesDigest(referenceBalances(p)));
            }

            const del = await run(['job', 'delete', 'bank', ...at]);
            expect(del.code, del.err).toBe(0);
            expect(del.out).toMatch(/^grid job bank deleted; its epochs stay in the clusters' stores/);
            expect((await gc.status()).jobs).toEqual([]);
            await gc.submitGridJob({ job: clusterBankSpec('bank', { ...params, opsPerUnit: 1_000 }, 0) });
            const again = await untilGrid(gc, (s) => (s.jobs[0]?.lines.length ?? 0) >= 1, 'a line of the job submitted again');
            expect(again.jobs[0]!.lines[0]!.gridEpoch).toBeGreaterThan(last.gridEpoch);
          } finally {
            gc.close();
          }
        });
      } finally {
        grid.child.kill('SIGTERM');
        await grid.exited;
      }
    });
  }, 240_000);
});
