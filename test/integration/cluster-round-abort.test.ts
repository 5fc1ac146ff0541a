import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { spawnService, type AgentProcess } from '../helpers/services.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { referenceBalances } from '../../src/bank/model.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { uniqueNodeId, procState, untilAgent, untilFile } from '../helpers/agent.js';
import { untilCluster } from '../helpers/cluster.js';
import { withTmp } from '../helpers/tmp.js';
import { realRuntime } from '../../src/wire/real-clients.js';

// kill -9 of an agent in the middle of a round (ARCHITECTURE §3 invariants 3
// and 4): the victim is parked inside its freeze window by a failpoint, then
// killed. The round aborts, the other units run (thawed), the previous epoch
// stays restorable, the job recovers and the next round commits.

const params = { accounts: 1024, units: 4, opsPerUnit: 3000, seed: 77 };
const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';

describe('cluster: kill -9 of an agent in the middle of a round', () => {
  it('aborts the round, leaves no unit frozen, keeps the previous epoch, and commits the next', async () => {
    await withTmp('round-abort', async (dir) => {
      const storeDir = join(dir, 'store');
      const cluster = await spawnService('cluster', [
        '--data-dir', join(dir, 'cluster'), '--store-dir', storeDir, '--heartbeat-interval-ms', '100',
        '--checkpoint-interval-ms', '200', '--metrics-listen', 'none',
      ], process.env, logs);
      const client = new ClusterClient(cluster.ready.grpc);
      const agents: Array<{ proc: AgentProcess; fpDir: string }> = [];
      try {
        for (const n of [1, 2, 3]) {
          const fpDir = join(dir, `fp${n}`);
          await mkdir(fpDir);
          await writeFile(join(fpDir, 'node.frozen.release'), ''); // open: rounds pass through
          const proc = await spawnService('agent', [
            '--data-dir', join(dir, `n${n}`), '--node-id', uniqueNodeId(`ra${n}`), '--store-dir', storeDir,
            '--cluster', cluster.ready.grpc, '--capacity', '4', '--metrics-listen', 'none',
          ], { ...process.env, GRIDCKPT_FAILPOINTS: 'node.frozen=wait', GRIDCKPT_FAILPOINT_DIR: fpDir }, logs);
          agents.push({ proc, fpDir });
        }
        await untilCluster(client, (s) => s.nodes.length === 3 && s.nodes.every((n) => n.verdict === 'alive'), 'three nodes');
        const placed = (await client.submitJob({ job: clusterBankSpec('bank', params, 0) })).job!.placements;
        const before = await untilCluster(client, (s) => s.jobs[0]!.roundsCommitted >= 2n, 'two committed rounds');
        expect(before.jobs[0]!.roundsAborted).toBe(0n);

        // Park the victim's next prepare inside its freeze window, then kill it there.
        const victim = agents.find((a) => placed.some((p) => p.nodeId === a.proc.ready.nodeId))!;
        await rm(join(victim.fpDir, 'node.frozen.hit'), { force: true });
        await rm(join(victim.fpDir, 'node.frozen.release'));
        await untilFile(join(victim.fpDir, 'node.frozen.hit'));
        const parked = await client.status();
        const committedBefore = parked.jobs[0]!.lastEpoch;
        victim.proc.child.kill('SIGKILL');
        await victim.proc.exited;

        const after = await untilCluster(client, (s) => s.jobs[0]!.recoveries === 1n && s.jobs[0]!.state === 'running', 'the recovery');
        expect(after.jobs[0]!.roundsAborted).toBeGreaterThanOrEqual(1n);
        expect(after.jobs[0]!.lastError).toMatch(/aborted/);
        // No surviving unit is left frozen (rounds go on every 200 ms, so one may be
        // inside a freeze window right now: it must come out of it).
        for (const a of agents.filter((x) => x !== victim)) {
          const c = new AgentClient(a.proc.ready.grpc);
          // Looked at again at each of the agent's events: a freeze ends before the agent tells of
          // its step (prepared, failed) or of the abort.
          let states: (string | null)[] = [];
          await untilAgent(c, async (st) => {
            const units = st.jobs.flatMap((j) => j.units).filter((u) => u.state !== 'exited');
            states = await Promise.all(units.map(async (u) => (u.state === 'running' ? await procState(u.pid) : 'frozen')));
            return states.every((x) => x !== 'frozen' && x !== 'T');
          }, `the units of ${a.proc.ready.nodeId} out of any freeze`, 5_000).catch((err: unknown) => {
            throw new Error(`units of ${a.proc.ready.nodeId} stay frozen: ${states.join(',')} (${String(err)})`);
          });
          // The previous epoch verifies through any survivor (the store is the cluster's).
          const v = await c.verifyEpoch({ jobId: 'bank', epoch: committedBefore });
          expect(v.ok, v.errors.join('; ')).toBe(true);
          c.close();
        }
        // The next round commits, and the job ends right.
        await untilCluster(client, (s) => s.jobs[0]!.lastEpoch > committedBefore + 1n, 'a round after the recovery');
        const done = await untilCluster(client, (s) => s.jobs[0]!.state !== 'running', 'the end of the job');
        expect(done.jobs[0]!.state).toBe('completed');
        for (let i = 0; i < params.units; i++) {
          const p = { ...params, units: 1, seed: params.seed + i };
          const image = await bankFromEpoch(storeDir, 'bank', done.jobs[0]!.lastEpoch, p, `bank-u${i}`);
          expect(balancesDigest(image.balances)).toBe(balancesDigest(referenceBalances(p)));
        }
        // The victim's units were frozen when it died: nothing but a cleanup may touch them.
        const leftovers = await detectFreezer('auto', { time: realRuntime(), scope: victim.proc.ready.nodeId });
        expect(await leftovers.cleanupScope()).toBeGreaterThan(0);
      } finally {
        client.close();
        for (const a of agents) {
          if (a.proc.child.exitCode === null && a.proc.child.signalCode === null) a.proc.child.kill('SIGTERM');
          await a.proc.exited;
          await (await detectFreezer('auto', { time: realRuntime(), scope: a.proc.ready.nodeId })).cleanupScope();
        }
        cluster.child.kill('SIGTERM');
        await cluster.exited;
      }
    });
  });
});
