import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { spawnService, CLI_SCRIPT, type AgentProcess } from '../helpers/services.js';
import { GridClient } from '../../src/wire/grid-client.js';
import { GridCatalog } from '../../src/grid/catalog.js';
import { KEEP_LINES } from '../../src/grid/core/supervisor-state.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { untilCluster, untilGrid } from '../helpers/cluster.js';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { listCommitted } from '../../src/store/index.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { totalOf, expectedTotal } from '../../src/bank/model.js';
import { uniqueNodeId } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';

// The grid tier as real processes: 1 grid, 2 clusters × 2 agents. A job
// spread over both clusters is checkpointed by coordinated grid rounds (a
// two-level two-phase commit); every recovery line names epochs that each
// cluster committed, and a kill -9 and restart of the grid coordinator loses
// no committed recovery line: the restarted grid resumes the job (the
// clusters' leases on it outlast the restart) and commits new lines.

const params = { accounts: 1024, units: 4, opsPerUnit: 20_000, seed: 90 }; // runs on past the grid's restart
const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';


describe('grid: coordinated rounds over two clusters', () => {
  it('records consistent recovery lines and keeps them across a kill -9 of the grid coordinator', async () => {
    await withTmp('grid', async (dir) => {
      const procs: AgentProcess[] = [];
      // A lease well beyond a restart, so the clusters keep the job while the grid is away.
  const gridArgs = ['--data-dir', join(dir, 'grid'), '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '300', '--cluster-lease-ms', '10000', '--metrics-listen', 'none', '--listen', '127.0.0.1:0'];
      let grid = await spawnService('grid', gridArgs, process.env, logs);
      let client = new GridClient(grid.ready.grpc);
      try {
        for (const c of ['ca', 'cb']) {
          const store = join(dir, `${c}-store`);
          const cluster = await spawnService('cluster', [
            '--data-dir', join(dir, c), '--store-dir', store, '--cluster-id', c, '--grid', grid.ready.grpc,
            '--heartbeat-interval-ms', '100', '--metrics-listen', 'none',
          ], process.env, logs);
          procs.push(cluster);
          for (const n of [1, 2]) {
            procs.push(await spawnService('agent', [
              '--data-dir', join(dir, `${c}-n${n}`), '--node-id', uniqueNodeId(`${c}${n}`), '--store-dir', store,
              '--cluster', cluster.ready.grpc, '--capacity', '4', '--metrics-listen', 'none',
            ], process.env, logs));
          }
        }
        await untilGrid(client, (s) => s.clusters.length === 2 && s.clusters.every((c) => c.verdict === 'alive'), 'two clusters');
        // Each cluster sees its two agents before units are placed.
        for (const cl of procs.filter((p) => p.ready.clusterId !== undefined)) {
          const cc = new ClusterClient(cl.ready.grpc);
          await untilCluster(cc, (s) => s.nodes.filter((n) => n.verdict === 'alive').length === 2, `the agents of ${cl.ready.clusterId}`);
          cc.close();
        }
        const submitted = await client.submitGridJob({ job: clusterBankSpec('bank', params, 0) });
        expect(new Set(Object.values(submitted.job!.clusters))).toEqual(new Set(['ca', 'cb']));
        const before = await untilGrid(client, (s) => (s.jobs[0]?.lines.length ?? 0) >= 3, 'three recovery lines');
        const lines = before.jobs[0]!.lines;
        for (const l of lines) {
          expect(Object.keys(l.clusterEpochs).sort()).toEqual(['ca', 'cb']);
          for (const [c, epoch] of Object.entries(l.clusterEpochs)) {
            expect(epoch).toBe(l.gridEpoch); // clusters commit the grid's epoch number
            const committed = (await listCommitted(join(dir, `${c}-store`), 'bank')).map((m) => m.epoch);
            expect(committed).toContain(epoch);
          }
        }
        // Each line is a consistent state: every sub-bank of both clusters sums to its total.
        const newest = lines[lines.length - 1]!;
        for (let i = 0; i < params.units; i++) {
          const c = submitted.job!.clusters[`u${i}`]!;
          const p = { ...params, units: 1, seed: params.seed + i };
          const image = await bankFromEpoch(join(dir, `${c}-store`), 'bank', newest.clusterEpochs[c]!, p, `bank-u${i}`);
          expect(totalOf(image.balances)).toBe(expectedTotal(p));
        }

        // The operator's view, through the CLI.
        const cli = (...args: string[]) => spawnSync(process.execPath, [CLI_SCRIPT, ...args, '--grid', grid.ready.grpc, '--json', '--insecure'], { encoding: 'utf8', timeout: 60_000 });
        const st = JSON.parse(cli('status').stdout) as { clusters: Array<{ verdict: string }> };
        expect(st.clusters.map((c) => c.verdict)).toEqual(['alive', 'alive']);
        const jobs = JSON.parse(cli('jobs').stdout) as Array<{ jobId: string; state: string }>;
        expect(jobs.map((j) => [j.jobId, j.state])).toEqual([['bank', 'running']]);
        const cp = cli('checkpoint', 'bank');
        expect(cp.status, cp.stderr).toBe(0);
        const line = (JSON.parse(cp.stdout) as { line: { gridEpoch: string; clusterEpochs: Record<string, string> } }).line;
        expect(Object.keys(line.clusterEpochs).sort()).toEqual(['ca', 'cb']);
        expect(BigInt(line.gridEpoch)).toBeGreaterThan(newest.gridEpoch);

        // kill -9 the grid coordinator and start it again on the same data directory.
        grid.child.kill('SIGKILL');
        await grid.exited;
        client.close();
        // Same address (the port the first one was given), so the clusters find it again.
        const address = grid.ready.grpc;
        grid = await spawnService('grid', [...gridArgs.slice(0, -1), address], process.env, logs);
        client = new GridClient(grid.ready.grpc);
        expect(grid.ready.grpc).toBe(address);
        expect(grid.ready.incarnation).toBe('2');
        const after = await client.status();
        const shown = after.jobs.find((j) => j.jobId === 'bank')!.lines.map((l) => l.gridEpoch);
        expect(shown[shown.length - 1]).toBeGreaterThanOrEqual(BigInt(line.gridEpoch));
        const kept = (await GridCatalog.open(join(dir, 'grid'))).linesOf('bank').map((l) => l.gridEpoch);
        // The catalog keeps the newest KEEP_LINES lines of a job (G6): every line shown before the kill that is
        // not older than the window is still there, and the window is full unless it holds them all.
        expect(kept.length === KEEP_LINES || kept.includes(lines[0]!.gridEpoch)).toBe(true);
        for (const l of lines) if (l.gridEpoch >= kept[0]!) expect(kept).toContain(l.gridEpoch);
        expect(kept).toContain(BigInt(line.gridEpoch));
        // The clusters find the new incarnation and register again.
        await untilGrid(client, (s) => s.clusters.length === 2, 'the clusters to re-register', 10_000);
        // The restarted grid resumed the job from its catalog (within the clusters' lease) and goes on checkpointing it.
        const resumed = await untilGrid(client, (s) => {
          const j = s.jobs.find((x) => x.jobId === 'bank');
          return j !== undefined && j.lines.length > 0 && j.lines[j.lines.length - 1]!.gridEpoch > BigInt(line.gridEpoch);
        }, 'a new recovery line from the restarted grid', 30_000);
        const job = resumed.jobs.find((x) => x.jobId === 'bank')!;
        expect(job.state).toBe('running');
        expect(job.recoveries).toBe(0n);
      } finally {
        client.close();
        for (const p of procs.reverse()) {
          if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
          await p.exited;
        }
        if (grid.child.exitCode === null && grid.child.signalCode === null) grid.child.kill('SIGTERM');
        await grid.exited;
      }
    });
  });
  it('a grid killed between PREPARE and COMMIT: the restarted grid supersedes the rounds the clusters hold, and commits', async () => {
    await withTmp('grid-held', async (dir) => {
      const procs: AgentProcess[] = [];
      const gridArgs = ['--data-dir', join(dir, 'grid'), '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '300', '--cluster-lease-ms', '10000', '--metrics-listen', 'none'];
      // The first incarnation dies at its first COMMIT: both clusters are left holding a prepared round.
      let grid = await spawnService('grid', [...gridArgs, '--listen', '127.0.0.1:0'], { ...process.env, GRIDCKPT_FAILPOINTS: 'grid.before-commit=kill' }, logs);
      let client = new GridClient(grid.ready.grpc);
      try {
        for (const c of ['ha', 'hb']) {
          const store = join(dir, `${c}-store`);
          const cluster = await spawnService('cluster', [
            '--data-dir', join(dir, c), '--store-dir', store, '--cluster-id', c, '--grid', grid.ready.grpc,
            '--heartbeat-interval-ms', '100', '--metrics-listen', 'none',
          ], process.env, logs);
          procs.push(cluster);
          procs.push(await spawnService('agent', [
            '--data-dir', join(dir, `${c}-n1`), '--node-id', uniqueNodeId(`${c}1`), '--store-dir', store,
            '--cluster', cluster.ready.grpc, '--capacity', '4', '--metrics-listen', 'none',
          ], process.env, logs));
          const cc = new ClusterClient(cluster.ready.grpc);
          await untilCluster(cc, (s) => s.nodes.filter((n) => n.verdict === 'alive').length === 1, `the agent of ${c}`);
          cc.close();
        }
        await untilGrid(client, (s) => s.clusters.filter((c) => c.verdict === 'alive').length === 2, 'two clusters');
        await client.submitGridJob({ job: clusterBankSpec('bank', { ...params, opsPerUnit: 6_000 }, 0) });
        expect((await grid.exited).signal).toBe('SIGKILL'); // died at the failpoint
        client.close();
        grid = await spawnService('grid', [...gridArgs, '--listen', grid.ready.grpc], process.env, logs);
        client = new GridClient(grid.ready.grpc);
        const s = await untilGrid(client, (x) => (x.jobs.find((j) => j.jobId === 'bank')?.lines.length ?? 0) >= 1, 'a line from the restarted grid', 30_000);
        const job = s.jobs.find((j) => j.jobId === 'bank')!;
        expect(job.state).toBe('running');
        expect(job.lines[0]!.gridEpoch).toBeGreaterThan(1n); // epoch 1 was the held one, never committed
      } finally {
        client.close();
        for (const p of procs.reverse()) {
          if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
          await p.exited;
        }
        if (grid.child.exitCode === null && grid.child.signalCode === null) grid.child.kill('SIGTERM');
        await grid.exited;
      }
    });
  });
});
