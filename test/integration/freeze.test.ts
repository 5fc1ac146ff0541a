import { describe, expect, it } from 'vitest';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startAgent, uniqueNodeId, procState, untilFile, type TestAgent } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';
import { bankJobSpec } from '../../src/bank/job.js';
import { AgentCallError } from '../../src/wire/agent-client.js';
import { expectBankFinishesRight, untilJob } from '../helpers/bank.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { referenceBalances } from '../../src/bank/model.js';

// Invariant 4 (always thaw) and the freeze itself: while the agent stands
// inside the freeze window (held there by a failpoint), every unit is really
// stopped; afterwards, and after any failure, every unit runs again.

const params = { accounts: 65536, units: 3, opsPerUnit: 400, seed: 5 }; // 129 pages, 516 KiB
const CGROUP_V1 = '/sys/fs/cgroup/freezer';

async function freezerState(nodeId: string, jobId: string, unitId: string): Promise<string> {
  return (await readFile(join(CGROUP_V1, 'gridckpt', nodeId, `${jobId}+${unitId}`, 'freezer.state'), 'utf8')).trim();
}

async function unitsOf(agent: TestAgent) {
  return (await agent.client.status()).jobs[0]!.units;
}

async function expectAllThawed(agent: TestAgent, kind: string): Promise<void> {
  for (const u of await unitsOf(agent)) {
    if (u.state === 'exited') continue;
    expect(await procState(u.pid), `unit ${u.unitId}`).not.toBe('T');
    if (kind === 'cgroup-v1') expect(await freezerState(agent.nodeId, 'bank', u.unitId)).toBe('THAWED');
  }
}

for (const kind of ['cgroup-v1', 'signal']) {
  describe(`freezer ${kind}`, () => {
    it('really stops every unit inside the freeze window and thaws them after', async () => {
      await withTmp('freeze', async (dir) => {
        const fpDir = join(dir, 'fp');
        await mkdir(fpDir);
        const agent = await startAgent(join(dir, 'agent'), {
          nodeId: uniqueNodeId('freeze'),
          args: ['--freezer', kind],
          env: { GRIDCKPT_FAILPOINTS: 'node.frozen=wait', GRIDCKPT_FAILPOINT_DIR: fpDir },
        });
        try {
          expect(agent.proc.ready.freezer).toBe(kind);
          await agent.client.startJob({ job: bankJobSpec('bank', { ...params, opsPerUnit: 1_000_000 }, 0) });
          const pending = agent.client.checkpoint({ jobId: 'bank', full: false });
          await untilFile(join(fpDir, 'node.frozen.hit'));
          const units = await unitsOf(agent);
          expect(units).toHaveLength(3);
          for (const u of units) {
            // The v1 freezer parks tasks in the refrigerator (state D); signals stop them (T).
            if (kind === 'cgroup-v1') expect(await freezerState(agent.nodeId, 'bank', u.unitId)).toBe('FROZEN');
            else expect(await procState(u.pid), `unit ${u.unitId}`).toBe('T');
          }
          await writeFile(join(fpDir, 'node.frozen.release'), '');
          const r = await pending;
          expect(r.epoch!.epoch).toBe(1n);
          expect(r.freezeWindowMs).toBeGreaterThan(0);
          await expectAllThawed(agent, kind);
          await agent.client.stopJob({ jobId: 'bank' });
        } finally {
          await writeFile(join(fpDir, 'node.frozen.release'), ''); // never leave the agent parked
          await agent.stop();
        }
      });
    });
  });
}

describe('always thaw', () => {
  it('thaws when the snapshot fails', async () => {
    await withTmp('thaw-snap', async (dir) => {
      const agent = await startAgent(dir, { nodeId: uniqueNodeId('snap'), env: { GRIDCKPT_FAILPOINTS: 'node.frozen=error' } });
      try {
        await agent.client.startJob({ job: bankJobSpec('bank', { ...params, opsPerUnit: 1_000_000 }, 0) });
        const err = await agent.client.checkpoint({ jobId: 'bank', full: false }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(AgentCallError);
        expect((err as AgentCallError).details).toMatch(/snapshot failed/);
        await expectAllThawed(agent, agent.proc.ready.freezer);
        await agent.client.stopJob({ jobId: 'bank' });
      } finally {
        await agent.stop();
      }
    });
  });

  it('thaws when the store is not writable, loses nothing, and the next checkpoint works', async () => {
    await withTmp('thaw-notdir', async (dir) => {
      const storeDir = join(dir, 'store');
      const agent = await startAgent(join(dir, 'agent'), { nodeId: uniqueNodeId('notdir'), args: ['--store-dir', storeDir] });
      try {
        const p = { ...params, opsPerUnit: 3000 };
        await agent.client.startJob({ job: bankJobSpec('bank', p, 0) });
        await untilJob(agent.client, 'bank', (j) => j.containers.length > 0);
        expect((await agent.client.checkpoint({ jobId: 'bank', full: false })).epoch!.epoch).toBe(1n);
        // A file where epoch 2's directory must go: the write fails with a real ENOTDIR/EEXIST.
        await writeFile(join(storeDir, 'bank', 'epoch-00000000000000000002'), 'in the way');
        const err = await agent.client.checkpoint({ jobId: 'bank', full: false }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(AgentCallError);
        expect((err as AgentCallError).details).toMatch(/ENOTDIR|EEXIST|not a directory|exists/i);
        await expectAllThawed(agent, agent.proc.ready.freezer);
        const job = (await agent.client.status()).jobs[0]!;
        expect(job.checkpointsFailed).toBe(1n);
        // The next epoch builds on epoch 1 and holds what the failed one had.
        const third = await agent.client.checkpoint({ jobId: 'bank', full: false });
        expect(third.epoch).toMatchObject({ epoch: 3n, parentEpoch: 1n, full: false });
        await expectBankFinishesRight(agent.client, 'bank', p);
        const last = await agent.client.checkpoint({ jobId: 'bank', full: false });
        const image = await bankFromEpoch(storeDir, 'bank', last.epoch!.epoch, p);
        expect(balancesDigest(image.balances)).toBe(balancesDigest(referenceBalances(p)));
      } finally {
        await agent.stop();
      }
    });
  });

  it('thaws when the store runs out of space (a real full tmpfs)', async () => {
    await withTmp('thaw-full', async (dir) => {
      const storeDir = join(dir, 'store');
      await mkdir(storeDir);
      // One page: zero pages take no room in an epoch (docs/store-lifecycle.md), so the part's data and table files
      // (a page each at least, as the bank has written some accounts) cannot both fit.
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4k', 'tmpfs', storeDir]);
      try {
        const agent = await startAgent(join(dir, 'agent'), { nodeId: uniqueNodeId('full'), args: ['--store-dir', storeDir] });
        try {
          await agent.client.startJob({ job: bankJobSpec('bank', { ...params, opsPerUnit: 1_000_000 }, 0) });
          await untilJob(agent.client, 'bank', (j) => j.containers.length > 0);
          const err = await agent.client.checkpoint({ jobId: 'bank', full: false }).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(AgentCallError);
          expect((err as AgentCallError).details).toMatch(/ENOSPC|no space/i);
          await expectAllThawed(agent, agent.proc.ready.freezer);
          expect((await agent.client.listEpochs({ jobId: 'bank' })).epochs).toEqual([]);
          await agent.client.stopJob({ jobId: 'bank' });
        } finally {
          await agent.stop();
        }
      } finally {
        execFileSync('umount', [storeDir]);
      }
    });
  });
});
