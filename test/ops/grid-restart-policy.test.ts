import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { spawnService, type AgentProcess } from '../helpers/services.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { GridClient } from '../../src/wire/grid-client.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { realRuntime } from '../../src/wire/real-clients.js';
import { uniqueNodeId } from '../helpers/agent.js';
import { untilCluster, untilGrid } from '../helpers/cluster.js';
import { withTmp } from '../helpers/tmp.js';
import { run } from './cli-run.js';

// A grid job's restart policy, from a spec file through `gridckpt start
// --grid` to every cluster that runs a share of it (issue 8: grid submits
// carried none, so every grid share used the default): "restore" brings a
// failed unit's share back and the job completes; "fail" fails the whole
// job at the grid, its units moved nowhere.

const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';

async function withGrid(dir: string, fn: (grid: string) => Promise<void>): Promise<void> {
  const procs: AgentProcess[] = [];
  try {
    const grid = await spawnService('grid', ['--data-dir', join(dir, 'grid'), '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '300', '--metrics-listen', 'none'], process.env, logs);
    procs.push(grid);
    const store = join(dir, 'store');
    const cluster = await spawnService('cluster', ['--data-dir', join(dir, 'cluster'), '--store-dir', store, '--cluster-id', 'ca', '--grid', grid.ready.grpc, '--heartbeat-interval-ms', '100', '--metrics-listen', 'none'], process.env, logs);
    procs.push(cluster);
    procs.push(await spawnService('agent', ['--data-dir', join(dir, 'n1'), '--node-id', uniqueNodeId('grp'), '--store-dir', store, '--cluster', cluster.ready.grpc, '--capacity', '4', '--metrics-listen', 'none'], process.env, logs));
    const cc = new ClusterClient(cluster.ready.grpc);
    await untilCluster(cc, (s) => s.nodes.some((n) => n.verdict === 'alive'), 'the agent');
    cc.close();
    const gc = new GridClient(grid.ready.grpc);
    await untilGrid(gc, (s) => s.clusters.some((c) => c.verdict === 'alive'), 'the cluster');
    gc.close();
    await fn(grid.ready.grpc);
  } finally {
    for (const p of procs.reverse()) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
      await p.exited;
    }
    for (const p of procs) if (p.ready.nodeId) await (await detectFreezer('auto', { time: realRuntime(), scope: p.ready.nodeId })).cleanupScope();
  }
}

/** A job whose unit u1 exits 3 the first time it runs, then sleeps a moment and exits 0; u0 does that directly. */
function specOf(dir: string, policy: { onUnitFailure: string; maxRestarts: number }) {
  const mark = join(dir, 'ran-once');
  return {
    jobId: 'flaky', checkpointIntervalMs: 0, fullEvery: 0, restartPolicy: policy,
    units: [
      { unitId: 'u0', command: '/bin/sh', args: ['-c', 'sleep 1'] },
      { unitId: 'u1', command: '/bin/sh', args: ['-c', `if [ ! -e ${mark} ]; then touch ${mark}; exit 3; fi; sleep 1`] },
    ],
  };
}

describe('a grid job\'s restart policy', () => {
  it('"restore": the failed unit\'s share is restored and the job completes', async () => {
    await withTmp('ops-grid-policy-restore', async (dir) => {
      await withGrid(dir, async (grid) => {
        const file = join(dir, 'spec.json');
        await writeFile(file, JSON.stringify(specOf(dir, { onUnitFailure: 'restore', maxRestarts: 2 })));
        const r = await run(['start', '--spec', file, '--grid', grid]);
        expect(r.code, r.err).toBe(0);
        expect(r.out).toMatch(/^grid job flaky started: u0@ca u1@ca/);
        const gc = new GridClient(grid);
        const end = await untilGrid(gc, (s) => s.jobs[0]?.state === 'completed' || s.jobs[0]?.state === 'failed', 'the job ended', 120_000);
        gc.close();
        expect(end.jobs[0]!.state, end.jobs[0]!.lastError).toBe('completed');
      });
    });
  }, 180_000);

  it('"fail": the job fails at the grid, naming the policy', async () => {
    await withTmp('ops-grid-policy-fail', async (dir) => {
      await withGrid(dir, async (grid) => {
        const file = join(dir, 'spec.json');
        await writeFile(file, JSON.stringify(specOf(dir, { onUnitFailure: 'fail', maxRestarts: 0 })));
        const r = await run(['start', '--spec', file, '--grid', grid, '--json']);
        expect(r.code, r.err).toBe(0);
        const gc = new GridClient(grid);
        const end = await untilGrid(gc, (s) => s.jobs[0]?.state === 'completed' || s.jobs[0]?.state === 'failed', 'the job ended', 120_000);
        gc.close();
        expect(end.jobs[0]!.state).toBe('failed');
        expect(end.jobs[0]!.lastError).toBe('a unit failed in cluster ca and the job\'s restart policy fails the job');
      });
    });
  }, 180_000);

  it('a bad policy in the spec is refused naming the field, before anything starts', async () => {
    await withTmp('ops-grid-policy-bad', async (dir) => {
      await withGrid(dir, async (grid) => {
        const file = join(dir, 'spec.json');
        await writeFile(file, JSON.stringify(specOf(dir, { onUnitFailure: 'retry', maxRestarts: 1 })));
        const r = await run(['start', '--spec', file, '--grid', grid]);
        expect(r.code).not.toBe(0);
        expect(r.err).toMatch(/restartPolicy\.onUnitFailure/);
        const gc = new GridClient(grid);
        expect((await gc.status()).jobs).toEqual([]);
        gc.close();
      });
    });
  }, 180_000);
});
