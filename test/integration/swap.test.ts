import { describe, expect, it } from 'vitest';
import { runNodeDrill } from '../../src/demo/node-drill.js';
import { startAgent, uniqueNodeId } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';
import { bankJobSpec } from '../../src/bank/job.js';
import { pageCount } from '../../src/bank/model.js';

// Seed case 2: a memory budget smaller than the job's pages. Pages swap to
// the agent's disk and every checkpoint still holds them (invariant 1).

const params = { accounts: 16384, units: 4, opsPerUnit: 800, seed: 3 }; // 33 pages
const budget = '64KiB'; // 16 frames

describe('memory budget smaller than the job', () => {
  it('swaps, and checkpoints include the swapped pages', async () => {
    await withTmp('swap', async (dir) => {
      const agent = await startAgent(dir, { nodeId: uniqueNodeId('swap'), args: ['--memory-budget', budget] });
      try {
        await agent.client.startJob({ job: bankJobSpec('bank', params, 0) });
        const done = await agent.client.waitJob({ jobId: 'bank', timeoutMs: 120_000 });
        expect(done.job!.state).toBe('completed');
        const cp = await agent.client.checkpoint({ jobId: 'bank', full: true });
        expect(Number(cp.epoch!.pageCount)).toBe(pageCount(params));
        expect(cp.pagesSwappedIn).toBeGreaterThan(0n);
        const s = await agent.client.status();
        expect(s.memory!.framesTotal).toBe(16);
        expect(s.memory!.swapOuts).toBeGreaterThan(0n);
        expect(s.memory!.pagesSwapped).toBeGreaterThan(0n);
      } finally {
        await agent.stop();
      }
    });
  });

  it('survives kill -9 and restore with the failure-free digest', async () => {
    await withTmp('swap-drill', async (workDir) => {
      const report = await runNodeDrill({ workDir, params, intervalMs: 150, killDelayMs: 200, memoryBudget: budget });
      expect(report.digest).toBe(report.expectedDigest);
      expect(report.invariantHeld).toBe(true);
    });
  });
});
