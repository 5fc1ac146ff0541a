import { describe, expect, it } from 'vitest';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnService, type AgentProcess } from '../helpers/services.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { clusterBankSpec } from '../../src/bank/job.js';
import { referenceBalances, totalOf, expectedTotal } from '../../src/bank/model.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { epochChain, epochDir, listCommitted } from '../../src/store/index.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { uniqueNodeId, untilFile, untilGone } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';
import { untilCluster as until } from '../helpers/cluster.js';
import { realRuntime } from '../../src/wire/real-clients.js';

// Agents starting next to a cluster store that other agents are writing, all
// real processes. The coordinator is held (failpoint) between its last part
// check and the rename of epoch 1's manifest; an agent that holds no units
// starts meanwhile. It must leave that epoch alone (an agent that swept
// incomplete epochs at start deleted it: the round aborted, or, had the
// rename landed between its look and its delete, a committed epoch was gone
// and the cluster never committed again). Then that agent is killed and
// restarted again and again while rounds run, and every epoch the cluster
// reports committed stays in the store. Crash leftovers are the
// coordinator's to sweep: a stale epoch 0 is gone once epoch 1 commits.

const params = { accounts: 512, units: 4, opsPerUnit: 4000, seed: 91 };
const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';
const HELD = 'store.before-manifest-rename';

describe('an agent starting beside a shared cluster store', () => {
  it('deletes nothing of it: the epoch being committed commits, and every committed epoch stays', async () => {
    await withTmp('shared-store', async (dir) => {
      const storeDir = join(dir, 'store');
      const fpDir = join(dir, 'failpoints');
      await mkdir(fpDir);
      // A crashed writer's leftover, below every epoch the job will use.
      const stale = epochDir(storeDir, 'bank', 0n);
      await mkdir(stale, { recursive: true });
      await writeFile(join(stale, 'node-gone.pages'), Buffer.alloc(4096));

      const cluster = await spawnService('cluster', [
        '--data-dir', join(dir, 'cluster'), '--store-dir', storeDir, '--cluster-id', 'c1', '--heartbeat-interval-ms', '100',
        '--checkpoint-interval-ms', '200', '--round-timeout-ms', '20000', '--metrics-listen', 'none',
      ], { ...process.env, GRIDCKPT_FAILPOINTS: `${HELD}=wait`, GRIDCKPT_FAILPOINT_DIR: fpDir }, logs);
      const client = new ClusterClient(cluster.ready.grpc);
      const agents: AgentProcess[] = [];
      const idleNode = uniqueNodeId('idle');
      const startIdle = () => spawnService('agent', [
        '--data-dir', join(dir, 'idle'), '--node-id', idleNode, '--store-dir', storeDir, '--cluster', cluster.ready.grpc, '--metrics-listen', 'none',
      ], process.env, logs);
      let idle: AgentProcess | null = null;
      try {
        for (const n of [1, 2]) {
          agents.push(await spawnService('agent', [
            '--data-dir', join(dir, `n${n}`), '--node-id', uniqueNodeId(`ss${n}`), '--store-dir', storeDir,
            '--cluster', cluster.ready.grpc, '--capacity', '4', '--metrics-listen', 'none',
          ], process.env, logs));
        }
        await until(client, (s) => s.nodes.filter((n) => n.verdict === 'alive').length === 2, 'two alive nodes');
        await client.submitJob({ job: clusterBankSpec('bank', params, 0) });

        // Round 1: every part durable, MANIFEST.json.tmp written, the rename held.
        await untilFile(join(fpDir, `${HELD}.hit`));
        const epoch1 = epochDir(storeDir, 'bank', 1n);
        const before = (await readdir(epoch1)).sort();
        expect(before).toContain('MANIFEST.json.tmp');
        // At most a data file and a table per agent: a part of no pages (its units made no container yet) has no files.
        const pages = before.filter((f) => f.endsWith('.pages'));
        expect(pages.length).toBeLessThanOrEqual(2);
        expect(before.filter((f) => f.endsWith('.table'))).toEqual(pages.map((f) => f.replace(/\.pages$/, '.table')));
        idle = await startIdle(); // ready: it has done all it does at start
        expect((await readdir(epoch1)).sort()).toEqual(before);
        await writeFile(join(fpDir, `${HELD}.release`), '');

        let s = await until(client, (x) => (x.jobs[0]?.roundsCommitted ?? 0n) >= 1n, 'round 1 to commit');
        expect((await listCommitted(storeDir, 'bank')).map((m) => m.epoch)).toContain(1n);
        expect(s.jobs[0]!.roundsAborted).toBe(0n);
        // The coordinator sweeps below what it committed: the stale epoch 0, not the rounds after 1.
        await untilGone(stale, 10_000);

        // Kill -9 and restart the idle agent while rounds run; nothing committed ever goes.
        for (let cycle = 0; cycle < 6; cycle += 1) {
          idle.child.kill('SIGKILL');
          await idle.exited;
          idle = await startIdle();
          s = await client.status();
          await expectCommittedStay(storeDir, s.jobs[0]!.lastEpoch);
        }

        const done = await until(client, (x) => x.jobs[0]!.state !== 'running', 'the job to end');
        const job = done.jobs[0]!;
        expect(job.state, job.lastError).toBe('completed');
        await expectCommittedStay(storeDir, job.lastEpoch);
        for (let i = 0; i < params.units; i++) {
          const p = { ...params, units: 1, seed: params.seed + i };
          const image = await bankFromEpoch(storeDir, 'bank', job.lastEpoch, p, `bank-u${i}`);
          expect(image.counters).toEqual([params.opsPerUnit]);
          expect(balancesDigest(image.balances)).toBe(balancesDigest(referenceBalances(p)));
          expect(totalOf(image.balances)).toBe(expectedTotal(p));
        }
      } finally {
        client.close();
        for (const a of [...agents, ...(idle ? [idle] : [])]) if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGTERM');
        await Promise.all([...agents, ...(idle ? [idle] : [])].map((a) => a.exited));
        cluster.child.kill('SIGTERM');
        await cluster.exited;
        for (const a of agents) await (await detectFreezer('auto', { time: realRuntime(), scope: a.ready.nodeId })).cleanupScope();
      }
    });
  }, 180_000);
});

/** The epoch the cluster last reported committed is in the store, with its whole chain. */
async function expectCommittedStay(storeDir: string, lastEpoch: bigint): Promise<void> {
  if (lastEpoch === 0n) return;
  const chain = await epochChain(storeDir, 'bank', lastEpoch);
  expect(chain[0]!.epoch).toBe(lastEpoch);
  const committed = (await listCommitted(storeDir, 'bank')).map((m) => m.epoch);
  for (const m of chain) expect(committed).toContain(m.epoch);
}
