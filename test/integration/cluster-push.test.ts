import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { withTmp } from '../helpers/tmp.js';
import { withProcs, kill9Agents } from '../helpers/procs.js';
import { untilCluster } from '../helpers/cluster.js';
import { EventLog } from '../helpers/watch.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { clusterBankSpec } from '../../src/bank/job.js';
import { referenceBalances, totalOf, expectedTotal } from '../../src/bank/model.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { listCommitted } from '../../src/store/index.js';

// Push, not poll: the end of a job reaches its cluster coordinator on the
// agents' heartbeats, each carrying the states of the agent's jobs and the
// gen of the start they belong to (src/cluster/core/supervisor-nodes.ts), and at once
// on a change of state (ReportJobs, between beats). Real processes: a
// coordinator and its agents.

/** Every sub-bank's failure-free end state is in the job's last epoch. */
async function expectEndInStore(store: string, params: { accounts: number; units: number; opsPerUnit: number; seed: number }, lastEpoch: bigint): Promise<void> {
  const epochs = await listCommitted(store, 'bank');
  expect(epochs.at(-1)!.epoch).toBe(lastEpoch);
  for (let i = 0; i < params.units; i++) {
    const p = { ...params, units: 1, seed: params.seed + i };
    const image = await bankFromEpoch(store, 'bank', lastEpoch, p, `bank-u${i}`);
    expect(image.counters, `sub-bank ${i}`).toEqual([params.opsPerUnit]);
    expect(totalOf(image.balances)).toBe(expectedTotal(p));
    expect(balancesDigest(image.balances)).toBe(balancesDigest(referenceBalances(p)));
  }
}

/**
 * Two agents each run one unit of a bank job; no periodic rounds (an hour apart), so the only round is the final
 * one, started when the coordinator hears that every unit completed. Returns how long after the last agent saw its
 * units complete (its Watch stream) the coordinator started that round (its Watch stream), both stamped on this
 * machine's wall clock; checks that the job completed with its end state in the store.
 */
async function completionLagMs(dir: string, beatMs: number, agentEnv: NodeJS.ProcessEnv, seed: number): Promise<number> {
  const params = { accounts: 256, units: 2, opsPerUnit: 1_500, seed };
  let lagMs = NaN;
  await withProcs(dir, async (p) => {
    const c = await p.cluster('c1', ['--heartbeat-interval-ms', String(beatMs), '--checkpoint-interval-ms', '3600000']);
    const agents = [await c.addAgent(1, agentEnv), await c.addAgent(1, agentEnv)];
    const agentClients = agents.map((a) => new AgentClient(a.ready.grpc));
    const clusterEvents = new EventLog(c.client.watch({ jobId: 'bank' }));
    const agentEvents = agentClients.map((a) => new EventLog(a.watch({ jobId: 'bank' })));
    try {
      await Promise.all([clusterEvents, ...agentEvents].map((l) => l.stream.subscribed));
      const submitted = await c.client.submitJob({ job: clusterBankSpec('bank', params, 0) });
      expect(new Set(submitted.job!.placements.map((x) => x.nodeId))).toEqual(new Set(agents.map((a) => a.ready.nodeId)));

      const ends = await Promise.all(agentEvents.map((l) => l.next((e) => e.kind === 'job' && e.to === 'completed', 'the units completing on an agent')));
      const finalRound = await clusterEvents.next((e) => e.kind === 'round' && e.to === 'started', 'the final round');
      const done = await clusterEvents.next((e) => e.kind === 'job' && (e.to === 'completed' || e.to === 'failed'), 'the end of the job');
      expect(done.to, done.detail).toBe('completed');
      lagMs = Number(finalRound.atUnixMs) - Math.max(...ends.map((e) => Number(e.atUnixMs)));
      // Nothing else starts a round here: it comes after the last node's completion.
      expect(lagMs).toBeGreaterThanOrEqual(0);

      const status = await c.client.status();
      expect(status.jobs[0]!.state).toBe('completed');
      expect(status.jobs[0]!.roundsCommitted).toBe(1n);
      await expectEndInStore(c.store, params, status.jobs[0]!.lastEpoch);
    } finally {
      for (const l of [clusterEvents, ...agentEvents]) l.stream.cancel();
      for (const a of agentClients) a.close();
    }
  });
  return lagMs;
}

describe('cluster: job states pushed on the agents\' heartbeats', () => {
  it('on the heartbeats alone (the reports between beats lost): the units\' completion reaches the coordinator within a few intervals, and the job completes', async () => {
    const beatMs = 250;
    // Every ReportJobs is lost on the way (failpoint): only the heartbeats carry the job states.
    const env = { ...process.env, GRIDCKPT_FAILPOINTS: 'agent.report-jobs=error' };
    const lagMs = await withTmp('push-beats', (dir) => completionLagMs(dir, beatMs, env, 51));
    expect(lagMs, `final round ${lagMs} ms after the last completion`).toBeLessThan(6 * beatMs);
  }, 120_000);

  it('at once, between beats: with 5 s heartbeats the coordinator starts the final round well within one interval of the completion', async () => {
    const beatMs = 5_000;
    const lagMs = await withTmp('push-now', (dir) => completionLagMs(dir, beatMs, process.env, 53));
    // The next beat is up to 5 s away; the report sent on the change does not wait for it.
    expect(lagMs, `final round ${lagMs} ms after the last completion`).toBeLessThan(beatMs / 3);
  }, 120_000);

  it('a restarted agent: its job is restored in place, a report from its previous incarnation that the job completed is refused, and the job ends with the failure-free state', async () => {
    // Beats a second apart: the detector would take about 9 s of silence to fail the node, far longer than a restart.
    const beatMs = 1_000;
    const params = { accounts: 256, units: 2, opsPerUnit: 3_000, seed: 52 };
    await withTmp('push-stale', (dir) => withProcs(dir, async (p) => {
      const c = await p.cluster('c1', ['--heartbeat-interval-ms', String(beatMs), '--checkpoint-interval-ms', '300']);
      const first = await c.addAgent(2);
      const nodeId = first.ready.nodeId;
      await c.client.submitJob({ job: clusterBankSpec('bank', params, 0) });
      await untilCluster(c.client, (s) => (s.jobs[0]?.roundsCommitted ?? 0n) >= 1n, 'a committed round');

      // kill -9 of the agent and its units, and a new incarnation of it at once, on the same directory.
      await kill9Agents([first]);
      const second = await p.spawn('agent', [
        '--data-dir', join(dir, 'c1-n1'), '--node-id', nodeId, '--store-dir', c.store,
        '--cluster', c.proc.ready.grpc, '--capacity', '2', '--metrics-listen', 'none',
      ]);
      expect(BigInt(second.ready.incarnation)).toBe(BigInt(first.ready.incarnation) + 1n);
      const restored = await untilCluster(c.client, (s) => s.jobs[0]!.recoveries === 1n && s.jobs[0]!.state === 'running', 'the job restored on the new incarnation');
      expect(restored.jobs[0]!.placements.every((x) => x.nodeId === nodeId)).toBe(true);
      expect(restored.nodes.find((n) => n.nodeId === nodeId)!.incarnation).toBe(BigInt(second.ready.incarnation));

      // A beat of the previous incarnation (delayed on the way, say) saying the job completed under the first
      // start the coordinator sent it: its incarnation in the high bits, start 1 below (nextStartGen).
      const firstGen = (BigInt(c.proc.ready.incarnation) << 32n) | 1n;
      const stale = await c.client.heartbeat({
        nodeId, incarnation: BigInt(first.ready.incarnation), seq: 1_000_000n, reportsJobs: true,
        jobs: [{ jobId: 'bank', state: 'completed', gen: firstGen, lastError: '' }],
      });
      expect(stale.known).toBe(false);
      // The same report sent between beats (ReportJobs) is refused too.
      const staleReport = await c.client.reportJobs({
        nodeId, incarnation: BigInt(first.ready.incarnation), jobs: [{ jobId: 'bank', state: 'completed', gen: firstGen, lastError: '' }],
      });
      expect(staleReport.known).toBe(false);
      // Had it counted, the job's only node would be complete: the periodic rounds stop and one final round ends the
      // job with its units still running. Instead the periodic rounds go on: two more commit, the job still running.
      const committed = (await c.client.status()).jobs[0]!.roundsCommitted;
      const later = await untilCluster(c.client, (s) => s.jobs[0]!.roundsCommitted >= committed + 2n || s.jobs[0]!.state !== 'running', 'two rounds after the stale report');
      expect(later.jobs[0]!.state).toBe('running');

      const end = await untilCluster(c.client, (s) => s.jobs[0]!.state === 'completed' || s.jobs[0]!.state === 'failed', 'the end of the job', 150_000);
      const job = end.jobs[0]!;
      expect(job.state, job.lastError).toBe('completed');
      expect(job.recoveries).toBe(1n);
      // Completed for real: the last epoch holds every unit's end state, which it would not had the stale report ended the job.
      await expectEndInStore(c.store, params, job.lastEpoch);
    }));
  }, 180_000);
});
