import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { join } from 'node:path';
import { startAgent, uniqueNodeId, type TestAgent } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';
import { untilJob } from '../helpers/bank.js';
import { bankJobSpec, readBankFromAgent } from '../../src/bank/job.js';
import { referenceBalances } from '../../src/bank/model.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { AgentCallError } from '../../src/wire/agent-client.js';
import { partInfoFromPb } from '../../src/node/codec.js';
import { commitEpoch, listCommitted } from '../../src/store/index.js';

// Two real agents as participants of coordinated rounds (ARCHITECTURE §4),
// with this test as the coordinator: PREPARE → COMMIT → manifest; an aborted
// round writes no manifest and loses no change (its pages are marked changed
// again, so the next epoch holds them); stale and fenced messages are refused.
// Each agent's PREPARED digest is the table digest of the part it then writes
// (part-digest.ts invariant 1), as the committed manifest records it. A
// round in which nothing changed is a read-only vote: PREPARED carries the
// (empty) part and containers, and a COMMIT sent anyway (an older
// coordinator's) answers the same part again.

const params = { accounts: 2048, units: 2, opsPerUnit: 1500, seed: 21 };
const JOB = 'bank';

function fence(epoch: bigint, incarnation = 1n) {
  return { clusterId: 'c1', nodeId: 'coord', incarnation, epoch, leaderTerm: 0n };
}

async function round(agents: TestAgent[], storeDir: string, epoch: bigint, parent: bigint | null): Promise<void> {
  const preparedDigests: Record<string, string> = {};
  for (const a of agents) {
    const p = await a.client.prepareCheckpoint({ fence: fence(epoch), jobId: JOB, parentEpoch: parent ?? 0n, full: parent === null });
    expect(p.epoch).toBe(epoch);
    expect(p.digest).toMatch(/^[0-9a-f]{64}$/);
    preparedDigests[a.nodeId] = p.digest;
  }
  const commits = [];
  for (const a of agents) commits.push(await a.client.commitCheckpoint({ fence: fence(epoch), jobId: JOB }));
  await commitEpoch({
    storeDir, jobId: JOB, epoch, parentEpoch: parent, full: parent === null, createdUnixMs: Date.now(),
    containers: commits.flatMap((c) => c.containers),
    parts: commits.map((c) => partInfoFromPb(c.part!)),
    layout: { spec: { jobId: JOB, units: [], checkpointIntervalMs: 0, fullEvery: 0 }, placement: {}, partOwners: {} },
  });
  const committed = (await listCommitted(storeDir, JOB)).find((m) => m.epoch === epoch)!;
  expect(Object.fromEntries(committed.parts.map((p) => [p.nodeId, p.tableDigest]))).toEqual(preparedDigests);
}

describe('node agents as round participants', () => {
  it('commit a two-node epoch, survive an aborted round without losing changes, refuse stale and fenced messages', async () => {
    await withTmp('participant', async (dir) => {
      const storeDir = join(dir, 'cluster-store');
      const agents = [
        await startAgent(join(dir, 'a'), { nodeId: uniqueNodeId('pa'), args: ['--store-dir', storeDir] }),
        await startAgent(join(dir, 'b'), { nodeId: uniqueNodeId('pb'), args: ['--store-dir', storeDir] }),
      ];
      const containers = ['bank-a', 'bank-b'];
      try {
        for (const [i, a] of agents.entries()) {
          await a.client.startJob({ job: bankJobSpec(JOB, params, 0, 0, containers[i]) });
          await untilJob(a.client, JOB, (j) => j.containers.length > 0);
        }
        await round(agents, storeDir, 1n, null);
        // Let the jobs finish: from now on nothing changes but what the rounds do.
        for (const a of agents) expect((await a.client.waitJob({ jobId: JOB, timeoutMs: 120_000 })).job!.state).toBe('completed');

        // Epoch 2 snapshots every change since epoch 1; one node writes it, then the
        // round aborts (say B's disk failed). Those changes must not be lost.
        for (const a of agents) await a.client.prepareCheckpoint({ fence: fence(2n), jobId: JOB, parentEpoch: 1n, full: false });
        await agents[0]!.client.commitCheckpoint({ fence: fence(2n), jobId: JOB });
        for (const a of agents) {
          const r = await a.client.abortCheckpoint({ fence: fence(2n), jobId: JOB, reason: 'participant b failed' });
          expect(r.dropped).toBe(true);
        }
        expect((await listCommitted(storeDir, JOB)).map((m) => m.epoch)).toEqual([1n]);

        // Stale and fenced messages.
        let err = await agents[0]!.client.prepareCheckpoint({ fence: fence(2n), jobId: JOB, parentEpoch: 1n, full: false }).catch((e: unknown) => e);
        expect((err as AgentCallError).code).toBe(status.ABORTED);
        expect((err as AgentCallError).details).toMatch(/stale prepare: epoch 2/);
        err = await agents[0]!.client.prepareCheckpoint({ fence: fence(3n, 0n), jobId: JOB, parentEpoch: 1n, full: false }).catch((e: unknown) => e);
        expect((err as AgentCallError).code).toBe(status.FAILED_PRECONDITION);
        expect((err as AgentCallError).details).toMatch(/fenced/);
        err = await agents[1]!.client.commitCheckpoint({ fence: fence(3n), jobId: JOB }).catch((e: unknown) => e);
        expect((err as AgentCallError).code).toBe(status.FAILED_PRECONDITION);

        // Epoch 3 builds on 1 and, the aborted round's pages being changed again, holds them all.
        await round(agents, storeDir, 3n, 1n);
        const manifests = await listCommitted(storeDir, JOB);
        expect(manifests.map((m) => [m.epoch, m.parentEpoch])).toEqual([[1n, null], [3n, 1n]]);
        expect(manifests[1]!.parts.map((p) => p.nodeId).sort()).toEqual(agents.map((a) => a.nodeId).sort());
        expect(manifests[1]!.parts.every((p) => p.pageCount > 0)).toBe(true);

        // Restoring epoch 3 from the files gives each sub-bank's failure-free end state.
        const expected = balancesDigest(referenceBalances(params));
        for (const [i, a] of agents.entries()) {
          const live = await readBankFromAgent(a.client, JOB, params, containers[i]);
          expect(balancesDigest(live.balances)).toBe(expected);
          const image = await bankFromEpoch(storeDir, JOB, 3n, params, containers[i]);
          expect(image.counters).toEqual([params.opsPerUnit, params.opsPerUnit]);
          expect(balancesDigest(image.balances)).toBe(expected);
        }

        // Epoch 4: nothing changed since 3, so each agent votes read-only: its PREPARED carries its durable empty
        // part and its containers. This coordinator ignores that and sends COMMIT anyway: the same part again.
        const votes = [];
        for (const a of agents) {
          const p = await a.client.prepareCheckpoint({ fence: fence(4n), jobId: JOB, parentEpoch: 3n, full: false });
          expect(p.pages).toBe(0n);
          expect(p.part).toEqual({ nodeId: a.nodeId, dataFile: `${a.nodeId}.pages`, tableFile: `${a.nodeId}.table`, dataBytes: 0n, tableBytes: 0n, pageCount: 0n, tableDigest: p.digest });
          expect(p.containers.map((c) => c.name)).toEqual([containers[agents.indexOf(a)]]);
          const c = await a.client.commitCheckpoint({ fence: fence(4n), jobId: JOB });
          expect([c.part, c.containers]).toEqual([p.part, p.containers]);
          votes.push(p);
        }
        await commitEpoch({
          storeDir, jobId: JOB, epoch: 4n, parentEpoch: 3n, full: false, createdUnixMs: Date.now(),
          containers: votes.flatMap((v) => v.containers), parts: votes.map((v) => partInfoFromPb(v.part!)),
          layout: { spec: { jobId: JOB, units: [], checkpointIntervalMs: 0, fullEvery: 0 }, placement: {}, partOwners: {} },
        });
        for (const [i, a] of agents.entries()) {
          expect(balancesDigest((await bankFromEpoch(storeDir, JOB, 4n, params, containers[i])).balances)).toBe(expected);
          // Epoch 5 builds on 4: the agent counts its read-only part committed, as a written one.
          await a.client.prepareCheckpoint({ fence: fence(5n), jobId: JOB, parentEpoch: 4n, full: false });
          await a.client.abortCheckpoint({ fence: fence(5n), jobId: JOB, reason: 'test' });
          expect((await a.client.status()).jobs.find((j) => j.jobId === JOB)).toMatchObject({ lastEpoch: 4n, checkpointsCommitted: 3n });
        }

        // A spare node takes over B from the empty epoch 4: it loads only B's parts (through 4's chain) and runs B's units.
        const spare = await startAgent(join(dir, 'c'), { nodeId: uniqueNodeId('pc'), args: ['--store-dir', storeDir] });
        agents.push(spare);
        const r = await spare.client.restore({
          jobId: JOB, epoch: 4n, partsFrom: [agents[1]!.nodeId], job: bankJobSpec(JOB, params, 0, 0, 'bank-b'),
        });
        expect(r.epoch!.epoch).toBe(4n);
        expect(r.job!.containers.map((c) => c.name)).toEqual(['bank-b']);
        expect((await spare.client.waitJob({ jobId: JOB, timeoutMs: 60_000 })).job!.state).toBe('completed');
        const moved = await readBankFromAgent(spare.client, JOB, params, 'bank-b');
        expect(balancesDigest(moved.balances)).toBe(expected);
      } finally {
        for (const a of agents) await a.stop();
      }
    });
  });
});
