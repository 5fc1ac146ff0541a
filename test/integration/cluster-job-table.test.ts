import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { spawnService } from '../helpers/services.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { realRuntime } from '../../src/wire/real-clients.js';
import { uniqueNodeId } from '../helpers/agent.js';
import { untilCluster } from '../helpers/cluster.js';
import { withTmp } from '../helpers/tmp.js';

// The cluster's job table holds what must be durable before a step's calls
// leave (a start's gen and placement, C9; the epochs a round may use, C3).
// While the table takes no write (a failpoint switch: a full or read-only
// data dir), no unit is started, and the job starts once writes succeed
// again; a restarted coordinator then finds it in the table.

const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';
const params = { accounts: 256, units: 2, opsPerUnit: 400_000, seed: 5 };

describe('cluster: a job table that takes no write', () => {
  it('starts no unit until the row is durable, then starts the job; a restarted coordinator finds it', async () => {
    await withTmp('job-table', async (dir) => {
      const fp = join(dir, 'fp');
      await mkdir(fp);
      const on = join(fp, 'cluster.job-table-save.on');
      await writeFile(on, '');
      const clusterArgs = ['--data-dir', join(dir, 'cluster'), '--store-dir', join(dir, 'store'), '--heartbeat-interval-ms', '100', '--metrics-listen', 'none'];
      const env = { ...process.env, GRIDCKPT_FAILPOINTS: 'cluster.job-table-save=switch', GRIDCKPT_FAILPOINT_DIR: fp };
      let cluster = await spawnService('cluster', [...clusterArgs, '--listen', '127.0.0.1:0'], env, logs);
      const agent = await spawnService('agent', [
        '--data-dir', join(dir, 'n1'), '--node-id', uniqueNodeId('jt1'), '--store-dir', join(dir, 'store'),
        '--cluster', cluster.ready.grpc, '--capacity', '4', '--metrics-listen', 'none',
      ], process.env, logs);
      let client = new ClusterClient(cluster.ready.grpc);
      const agentClient = new AgentClient(agent.ready.grpc);
      try {
        await untilCluster(client, (s) => s.nodes.length === 1 && s.nodes[0]!.verdict === 'alive', 'the agent');
        const submitted = client.submitJob({ job: clusterBankSpec('bank', params, 200) });
        // The submit's step could not write its row: its start was never sent, and the job waits.
        const waiting = await untilCluster(client, (s) => s.jobs[0]?.state === 'recovering', 'the job to wait for its row', 30_000);
        expect(waiting.jobs[0]!.roundsCommitted).toBe(0n);
        expect((await agentClient.status()).jobs).toEqual([]);
        await rm(on);
        await submitted;
        const running = await untilCluster(client, (s) => s.jobs[0]?.state === 'running' && s.jobs[0].roundsCommitted >= 1n, 'the job to run and commit');
        expect(running.jobs[0]!.placements.map((p) => p.unitId).sort()).toEqual(['u0', 'u1']);

        // kill -9 and restart on the same data dir (and port): the row was written, so the job is taken back.
        const address = cluster.ready.grpc;
        cluster.child.kill('SIGKILL');
        await cluster.exited;
        client.close();
        cluster = await spawnService('cluster', [...clusterArgs, '--listen', address], env, logs);
        client = new ClusterClient(cluster.ready.grpc);
        const back = await untilCluster(client, (s) => s.jobs.some((j) => j.jobId === 'bank' && j.state === 'running'), 'the job back after the restart');
        expect(back.jobs.find((j) => j.jobId === 'bank')!.placements.length).toBe(2);
      } finally {
        client.close();
        agentClient.close();
        for (const p of [agent, cluster]) {
          if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
          await p.exited;
        }
        await (await detectFreezer('auto', { time: realRuntime(), scope: agent.ready.nodeId })).cleanupScope();
      }
    });
  }, 120_000);
});
