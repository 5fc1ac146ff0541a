import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { AgentClient } from '../../src/wire/agent-client.js';
import { GridClient } from '../../src/wire/grid-client.js';
import { clusterBankSpec } from '../../src/bank/job.js';
import { withProcs } from '../helpers/procs.js';
import { uniqueNodeId } from '../helpers/agent.js';
import { untilCluster, untilGrid } from '../helpers/cluster.js';
import { withTmp } from '../helpers/tmp.js';

// Issue 8: an agent that takes part in a coordinator's rounds (cluster or
// grid mode) recorded nothing: no gridckpt_node_checkpoints_total series and
// exported_bytes_total 0. Its part's bytes count once durable; the commit
// once the coordinator builds on the epoch.

const params = { accounts: 512, units: 2, opsPerUnit: 400_000, seed: 7 };

async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const out = new Map<string, number>();
  for (const l of text.split('\n')) {
    if (l.startsWith('#') || l.trim() === '') continue;
    const i = l.lastIndexOf(' ');
    out.set(l.slice(0, i), Number(l.slice(i + 1)));
  }
  return out;
}

async function expectRecorded(agentGrpc: string, metricsUrl: string): Promise<void> {
  const m = await scrape(metricsUrl);
  expect(m.get('gridckpt_node_exported_bytes_total') ?? 0).toBeGreaterThan(0);
  expect(m.get('gridckpt_node_exported_pages_total') ?? 0).toBeGreaterThan(0);
  expect(m.get('gridckpt_node_checkpoints_total{outcome="part_durable",stage=""}') ?? 0).toBeGreaterThanOrEqual(3);
  expect(m.get('gridckpt_node_checkpoints_total{outcome="committed",stage=""}') ?? 0).toBeGreaterThanOrEqual(1);
  const c = new AgentClient(agentGrpc);
  try {
    const job = (await c.status()).jobs.find((j) => j.jobId === 'bank')!;
    expect(job.checkpointsCommitted).toBeGreaterThanOrEqual(1);
    expect(job.lastEpoch).toBeGreaterThan(0n);
  } finally {
    c.close();
  }
}

describe('agent metrics and status under a coordinator', () => {
  it('cluster mode: a round\'s part and its commit are counted', async () => {
    await withTmp('ops-metrics-c', async (dir) => {
      await withProcs(dir, async (p) => {
        const c = await p.cluster('mc', ['--listen', '127.0.0.1:0']);
        const a = await p.spawn('agent', [
          '--data-dir', join(dir, 'n1'), '--node-id', uniqueNodeId('mc1'), '--store-dir', c.store,
          '--cluster', c.proc.ready.grpc, '--capacity', '4', '--metrics-listen', '127.0.0.1:0',
        ]);
        await untilCluster(c.client, (s) => s.nodes.some((n) => n.nodeId === a.ready.nodeId && n.verdict === 'alive'), 'the agent');
        await c.client.submitJob({ job: clusterBankSpec('bank', params, 100), gridManaged: false, gridGen: 0n });
        await untilCluster(c.client, (s) => (s.jobs[0]?.roundsCommitted ?? 0n) >= 4n, 'four rounds committed');
        await expectRecorded(a.ready.grpc, a.ready.metrics!);
      });
    });
  }, 120_000);

  it('grid mode: a grid round\'s part and its commit are counted', async () => {
    await withTmp('ops-metrics-g', async (dir) => {
      await withProcs(dir, async (p) => {
        const grid = await p.spawn('grid', ['--data-dir', join(dir, 'grid'), '--heartbeat-interval-ms', '100', '--checkpoint-interval-ms', '150', '--metrics-listen', 'none', '--listen', '127.0.0.1:0']);
        const gc = new GridClient(grid.ready.grpc);
        try {
          const c = await p.cluster('mg', ['--listen', '127.0.0.1:0', '--grid', grid.ready.grpc]);
          const a = await p.spawn('agent', [
            '--data-dir', join(dir, 'n1'), '--node-id', uniqueNodeId('mg1'), '--store-dir', c.store,
            '--cluster', c.proc.ready.grpc, '--capacity', '4', '--metrics-listen', '127.0.0.1:0',
          ]);
          await untilCluster(c.client, (s) => s.nodes.some((n) => n.nodeId === a.ready.nodeId && n.verdict === 'alive'), 'the agent');
          await untilGrid(gc, (s) => s.clusters.some((x) => x.verdict === 'alive'), 'the cluster');
          await gc.submitGridJob({ job: clusterBankSpec('bank', params, 0) });
          await untilGrid(gc, (s) => (s.jobs[0]?.lines.length ?? 0) >= 4, 'four recovery lines');
          await expectRecorded(a.ready.grpc, a.ready.metrics!);
        } finally {
          gc.close();
        }
      });
    });
  }, 120_000);
});
