import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnService, type AgentProcess } from '../helpers/services.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { clusterBankSpec } from '../../src/bank/job.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { uniqueNodeId } from '../helpers/agent.js';
import { killGroups, unitPids } from '../helpers/bank.js';
import { EventLog } from '../helpers/watch.js';
import { realRuntime } from '../../src/wire/real-clients.js';

// Push, not poll: a cluster coordinator and three node agents as real
// processes, watched over their Watch streams only. The cluster's stream
// shows a committed round, then — after kill -9 of an agent that holds units
// — the failure verdict, the recovery starting and done, and the job running
// again, in that order; a surviving agent's stream shows its side (its part
// of each round, the restore). No status is polled.

const params = { accounts: 1024, units: 4, opsPerUnit: 2500, seed: 44 };
const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';

describe('Watch on real processes', () => {
  it('pushes a committed round, then a kill -9 of an agent: failure, recovery started and done, in order', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gridckpt-watch-'));
    const procs: AgentProcess[] = [];
    const agents: AgentProcess[] = [];
    const clients: Array<{ close(): void }> = [];
    // Even if the test times out: every process stopped, the killed agent's cgroups removed, the directory gone.
    onTestFinished(async () => {
      for (const c of clients) c.close();
      for (const p of procs.reverse()) {
        if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
        await p.exited;
      }
      for (const a of agents) await (await detectFreezer('auto', { time: realRuntime(), scope: a.ready.nodeId })).cleanupScope();
      await rm(dir, { recursive: true, force: true });
    });
    const storeDir = join(dir, 'store');
    // 250 ms heartbeats: this test is about what is pushed, not detection speed, and a busy machine
    // must not make the detector declare live nodes failed.
    const cluster = await spawnService('cluster', [
      '--data-dir', join(dir, 'cluster'), '--store-dir', storeDir, '--cluster-id', 'cw',
      '--heartbeat-interval-ms', '250', '--checkpoint-interval-ms', '200', '--metrics-listen', 'none',
    ], process.env, logs);
    procs.push(cluster);
    const client = new ClusterClient(cluster.ready.grpc);
    clients.push(client);
    // Subscribed before anything happens: every event from here on is seen.
    const events = new EventLog(client.watch());
    clients.push({ close: () => events.stream.cancel() });
    await events.stream.subscribed;
    for (const n of [1, 2, 3]) {
      const a = await spawnService('agent', [
        '--data-dir', join(dir, `n${n}`), '--node-id', uniqueNodeId(`w${n}`), '--store-dir', storeDir,
        '--cluster', cluster.ready.grpc, '--capacity', '4', '--metrics-listen', 'none',
      ], process.env, logs);
      agents.push(a);
      procs.push(a);
    }
    const registered = new Set<string>();
    while (registered.size < 3) registered.add((await events.next((e) => e.kind === 'member' && e.to === 'alive', 'three nodes registered')).subject);
    expect([...registered].sort()).toEqual(agents.map((a) => a.ready.nodeId).sort());

    const submitted = await client.submitJob({ job: clusterBankSpec('bank', params, 0), gridManaged: false });
    const used = new Set(submitted.job!.placements.map((p) => p.nodeId));
    const victim = agents.find((a) => used.has(a.ready.nodeId))!;
    const survivor = agents.find((a) => a !== victim && used.has(a.ready.nodeId)) ?? agents.find((a) => a !== victim)!;
    const survivorClient = new AgentClient(survivor.ready.grpc);
    clients.push(survivorClient);
    const agentEvents = new EventLog(survivorClient.watch({ jobId: 'bank', replayRecent: 100 }));
    clients.push({ close: () => agentEvents.stream.cancel() });
    await agentEvents.stream.subscribed;

    const placed = await events.next((e) => e.kind === 'job' && e.jobId === 'bank', 'the job placed');
    expect(placed.to).toBe('running');
    const committed = await events.next((e) => e.kind === 'round' && e.to === 'committed', 'a committed round');
    expect(committed.jobId).toBe('bank');
    expect(committed.epoch).toBeGreaterThan(0n);

    // kill -9 of a node that holds units, and its units with it.
    const victimClient = new AgentClient(victim.ready.grpc);
    const pids = await unitPids(victimClient, 'bank');
    victimClient.close();
    victim.child.kill('SIGKILL');
    killGroups(pids);

    const failed = await events.next((e) => e.kind === 'member' && e.subject === victim.ready.nodeId && e.to === 'failed', 'the failure verdict', 10_000);
    const started = await events.next((e) => e.kind === 'recovery' && e.to === 'started', 'the recovery to start');
    expect(started.jobId).toBe('bank');
    expect(started.subject).toBe(victim.ready.nodeId);
    expect(started.detail).toMatch(/declared failed by the detector/);
    const done = await events.next((e) => e.kind === 'recovery' && e.jobId === 'bank' && e.to !== 'started', 'the recovery to end');
    expect(done.to, done.detail).toBe('done');
    expect(done.epoch).toBeGreaterThanOrEqual(committed.epoch);
    const after = await events.next((e) => e.kind === 'round' && e.to === 'committed', 'a round after the recovery');
    expect(after.epoch).toBeGreaterThan(done.epoch);
    const end = await events.next((e) => e.kind === 'job' && e.jobId === 'bank' && (e.to === 'completed' || e.to === 'failed'), 'the end of the job', 120_000);
    expect(end.to).toBe('completed');

    // In order, numbered without gaps (this stream has no filter), and the job went recovering → running between.
    const seqs = events.seen.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + BigInt(i)));
    expect(committed.seq < failed.seq && failed.seq < started.seq && started.seq < done.seq && done.seq < after.seq).toBe(true);
    const states = events.seen.filter((e) => e.kind === 'job' && e.seq > committed.seq && e.seq < after.seq).map((e) => `${e.from}→${e.to}`);
    expect(states).toEqual(['running→recovering', 'recovering→running']);
    expect(events.seen.every((e) => e.incarnation === BigInt(cluster.ready.incarnation))).toBe(true);

    // The surviving agent saw its side: its part of rounds before the kill, then the restore.
    await agentEvents.next((e) => e.kind === 'recovery' && e.to === 'done', 'the survivor\'s restore', 10_000);
    const agentSide = agentEvents.seen.map((e) => `${e.kind}:${e.to}`);
    expect(agentSide).toContain('round:prepared');
    expect(agentSide).toContain('round:durable');
    expect(agentSide.indexOf('round:durable')).toBeLessThan(agentSide.indexOf('recovery:done'));
    expect(agentEvents.seen.every((e) => e.jobId === 'bank' && e.incarnation === BigInt(survivor.ready.incarnation))).toBe(true);

    // A final status read agrees with what was pushed.
    const s = await client.status();
    expect(s.jobs[0]!.state).toBe('completed');
    expect(s.jobs[0]!.recoveries).toBe(1n);
    expect(s.nodes.find((n) => n.nodeId === victim.ready.nodeId)!.verdict).toBe('failed');
    events.stream.cancel();
    agentEvents.stream.cancel();
  }, 240_000); // the job to its end, on a busy machine
});
