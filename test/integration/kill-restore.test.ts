import { describe, expect, it } from 'vitest';
import { runNodeDrill } from '../../src/demo/node-drill.js';
import { withTmp } from '../helpers/tmp.js';

// ARCHITECTURE §3 invariants 3 (atomic commit) and 5 (same answer): kill -9
// of the agent and every unit at a random moment of a checkpointed bank run;
// a new agent restores the last committed epoch and the job ends with the
// failure-free digest; every committed epoch sums to the invariant total.

const params = { accounts: 2048, units: 4, opsPerUnit: 1500, seed: 7 };

describe('kill -9 at a random moment, then restore', () => {
  const delays = [0, 1, 2].map(() => Math.floor(Math.random() * 700));
  for (const [i, killDelayMs] of delays.entries()) {
    it(`run ${i + 1}: killed ${killDelayMs} ms after the first epoch, finishes with the failure-free digest`, async () => {
      await withTmp('drill', async (workDir) => {
        const report = await runNodeDrill({ workDir, params, intervalMs: 200, killDelayMs });
        expect(report.freezer).toBe('cgroup-v1');
        expect(BigInt(report.restoredEpoch)).toBeGreaterThanOrEqual(1n);
        expect(report.epochsCommitted).toBeGreaterThanOrEqual(2); // before the kill and after the restore
        for (const e of report.epochChecks) expect(e, `epoch ${e.epoch}`).toMatchObject({ ok: true, total: String(2048n * 1000n) });
        expect(report.digest).toBe(report.expectedDigest);
        expect(report.invariantHeld).toBe(true);
      });
    });
  }

  it('works the same with the SIGSTOP/SIGCONT freezer', async () => {
    await withTmp('drill-sig', async (workDir) => {
      const report = await runNodeDrill({ workDir, params, intervalMs: 200, killDelayMs: Math.floor(Math.random() * 500), freezer: 'signal' });
      expect(report.freezer).toBe('signal');
      expect(report.digest).toBe(report.expectedDigest);
      expect(report.invariantHeld).toBe(true);
    });
  });
});
