import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { AgentClient } from '../../src/wire/agent-client.js';
import { GridClient } from '../../src/wire/grid-client.js';
import { JobAction } from '../../src/gen/gridckpt/v1/common.js';
import { clusterBankSpec } from '../../src/bank/job.js';
import { listCommitted } from '../../src/store/index.js';
import { UnitClient } from '../../src/unit/client.js';
import { withProcs } from '../helpers/procs.js';
import { announcingUnit, uniqueNodeId, unitEnvOf } from '../helpers/agent.js';
import { untilCluster, untilGrid } from '../helpers/cluster.js';
import { EventLog } from '../helpers/watch.js';
import { withTmp } from '../helpers/tmp.js';

// Issue 8: an agent that takes part in a coordinator's rounds (cluster or
// grid mode) recorded nothing: no gridckpt_node_checkpoints_total series and
// exported_bytes_total 0. Its part's bytes count once durable; the commit
// once the coordinator builds on the epoch. A part with nothing to write (a
// read-only vote: its PREPARED carries it, no COMMIT comes) counts the same.

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

  it('cluster mode, an idle job: rounds with nothing to write commit with no COMMIT sent, restore, and are counted', async () => {
    await withTmp('ops-metrics-ro', async (dir) => {
      await withProcs(dir, async (p) => {
        const c = await p.cluster('mr', ['--listen', '127.0.0.1:0']);
        const agents = [];
        for (const n of [1, 2]) {
          const a = await p.spawn('agent', [
            '--data-dir', join(dir, `n${n}`), '--node-id', uniqueNodeId(`mr${n}`), '--store-dir', c.store,
            '--cluster', c.proc.ready.grpc, '--capacity', '1', '--metrics-listen', '127.0.0.1:0',
          ]);
          await untilCluster(c.client, (s) => s.nodes.some((x) => x.nodeId === a.ready.nodeId && x.verdict === 'alive'), `agent ${n}`);
          agents.push(a);
        }
        const clients = agents.map((a) => new AgentClient(a.ready.grpc));
        const envFiles = [join(dir, 'u0.env'), join(dir, 'u1.env')];
        // One unit per node (capacity 1), each writes one page once and then idles; no periodic rounds.
        await c.client.submitJob({ job: { jobId: 'idle', units: envFiles.map((f, i) => announcingUnit(`u${i}`, f)), checkpointIntervalMs: 0, fullEvery: 0 } });
        const writePage = async (i: number, text: string) => {
          const u = new UnitClient(await unitEnvOf(envFiles[i]!), 10_000);
          try {
            await u.openContainer(`c${i}`, { pageCount: 4, create: true });
            await u.write(`c${i}`, 1, 0, Buffer.from(text));
          } finally {
            u.close();
          }
        };
        const logs = clients.map((a) => new EventLog(a.watch({ jobId: 'idle' })));
        try {
          await Promise.all(logs.map((l) => l.stream.subscribed));
          for (const i of [0, 1]) await writePage(i, `hello ${i}`);
          expect((await c.client.checkpointJob({ jobId: 'idle' })).epoch).toMatchObject({ epoch: 1n, full: true, pageCount: 8n }); // a full epoch: every page of both containers
          // Nothing changed since: every node votes read-only, and the manifest is written in the step of the last vote.
          for (const epoch of [2n, 3n, 4n]) {
            const r = await c.client.checkpointJob({ jobId: 'idle' });
            expect(r.epoch).toMatchObject({ epoch, parentEpoch: epoch - 1n, pageCount: 0n });
            expect(r.commitMs).toBe(0);
          }
          // Each agent: PREPARED then DURABLE per round; epoch 1's DURABLE when its COMMIT was served, the others'
          // with the read-only vote itself (no COMMIT). Every event of epochs 1 to 3 comes before epoch 4's.
          for (const log of logs) {
            await log.next((e) => e.kind === 'round' && e.epoch === 4n && e.to === 'durable', 'epoch 4 durable');
            const rounds = log.seen.filter((e) => e.kind === 'round').map((e) => [e.epoch, e.to]);
            expect(rounds).toEqual([1n, 2n, 3n, 4n].flatMap((epoch) => [[epoch, 'prepared'], [epoch, 'durable']]));
            const details = log.seen.filter((e) => e.kind === 'round').map((e) => e.detail);
            expect(details.map((d) => /voted read-only|read-only vote, no COMMIT/.test(d))).toEqual([false, false, true, true, true, true, true, true]);
          }
          const manifests = await listCommitted(c.store, 'idle');
          expect(manifests.map((m) => [m.epoch, m.parts.map((x) => x.pageCount)])).toEqual([[1n, [4, 4]], [2n, [0, 0]], [3n, [0, 0]], [4n, [0, 0]]]);
          expect(manifests[3]!.containers.map((x) => x.name).sort()).toEqual(['c0', 'c1']);
          // Counted as any part (issue 8): durable four times, committed for epochs 1-3 (built on by the next PREPARE).
          for (const [i, a] of agents.entries()) {
            const m = await scrape(a.ready.metrics!);
            expect(m.get('gridckpt_node_checkpoints_total{outcome="part_durable",stage=""}')).toBe(4);
            expect(m.get('gridckpt_node_checkpoints_total{outcome="committed",stage=""}')).toBe(3);
            expect(m.get('gridckpt_node_exported_pages_total')).toBe(4);
            expect((await clients[i]!.status()).jobs.find((j) => j.jobId === 'idle')).toMatchObject({ lastEpoch: 3n, checkpointsCommitted: 3n });
          }
          // The empty epoch 3 restores (through its chain to epoch 1): a change made since is undone.
          await writePage(0, 'changed');
          expect((await c.client.controlJob({ jobId: 'idle', action: JobAction.JOB_ACTION_RESTORE, epoch: 3n })).epoch).toBe(3n);
          for (const [i, a] of clients.entries()) {
            const page = Buffer.from((await a.readContainer({ jobId: 'idle', container: `c${i}`, firstPage: 1, pageCount: 1 })).data);
            expect(page.subarray(0, 7).toString()).toBe(`hello ${i}`);
          }
        } finally {
          for (const l of logs) l.stream.cancel();
          for (const a of clients) a.close();
        }
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
