import { describe, expect, it } from 'vitest';
import { readdir, readFile, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startAgent, uniqueNodeId } from '../helpers/agent.js';
import { expectBankFinishesRight, killGroups, unitPids, untilCommitted, untilJob } from '../helpers/bank.js';
import { withTmp } from '../helpers/tmp.js';
import { bankJobSpec } from '../../src/bank/job.js';
import { AgentCallError } from '../../src/wire/agent-client.js';
import { status } from '@grpc/grpc-js';

// Invariant 3 (atomic commit) and 6 (verified bytes) with real kill -9.

const params = { accounts: 2048, units: 4, opsPerUnit: 2500, seed: 11 };

async function epochDirs(storeDir: string): Promise<string[]> {
  return (await readdir(join(storeDir, 'bank'))).filter((n) => n.startsWith('epoch-')).sort();
}

describe('kill -9 between page data and manifest', () => {
  for (const point of ['store.after-part-data', 'store.before-manifest-rename']) {
    it(`at ${point}: the previous epoch stays restorable and the job finishes right`, async () => {
      await withTmp('crash', async (dir) => {
        const nodeId = uniqueNodeId('crash');
        const storeDir = join(dir, 'store');
        const a = await startAgent(dir, { nodeId });
        await a.client.startJob({ job: bankJobSpec('bank', params, 0) });
        // Pages to write: a part of no pages writes no file at all (store/epoch-writer.ts invariant 5).
        await untilJob(a.client, 'bank', (j) => j.containers.length > 0);
        const first = await a.client.checkpoint({ jobId: 'bank', full: false });
        expect(first.epoch!.epoch).toBe(1n);
        expect(first.epoch!.pageCount).toBeGreaterThan(0n);
        const pidsA = await unitPids(a.client, 'bank');
        await a.kill9();
        killGroups(pidsA);

        const b = await startAgent(dir, { nodeId, env: { GRIDCKPT_FAILPOINTS: `${point}=kill` } });
        await b.client.restore({ jobId: 'bank', epoch: 0n });
        const pidsB = await unitPids(b.client, 'bank');
        // Full: an incremental epoch right after the restore may have no changed page, and so no file to write.
        const err = await b.client.checkpoint({ jobId: 'bank', full: true }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(AgentCallError);
        expect((err as AgentCallError).code).toBe(status.UNAVAILABLE);
        expect((await b.proc.exited).signal).toBe('SIGKILL');
        killGroups(pidsB);
        // The crash left epoch 2 half written: files but no manifest.
        const dirs = await epochDirs(storeDir);
        expect(dirs).toHaveLength(2);
        const half = await readdir(join(storeDir, 'bank', dirs[1]!));
        expect(half).not.toContain('MANIFEST.json');
        expect(half.some((f) => f.endsWith('.pages'))).toBe(true);

        const c = await startAgent(dir, { nodeId });
        try {
          const epochs = await c.client.listEpochs({ jobId: 'bank' });
          expect(epochs.epochs.map((e) => e.epoch)).toEqual([1n]);
          expect(await epochDirs(storeDir)).toHaveLength(1); // the leftover was removed at start
          expect((await c.client.verifyEpoch({ jobId: 'bank', epoch: 1n })).ok).toBe(true);
          const r = await c.client.restore({ jobId: 'bank', epoch: 0n });
          expect(r.epoch!.epoch).toBe(1n);
          expect(r.skipped).toEqual([]);
          expect(r.job!.units.every((u) => u.starts === 1 && u.state === 'running')).toBe(true);
          const next = await c.client.checkpoint({ jobId: 'bank', full: false });
          expect(next.epoch!.epoch).toBe(2n);
          expect(next.epoch!.parentEpoch).toBe(1n);
          await expectBankFinishesRight(c.client, 'bank', params);
          // Each restarted unit was told which epoch it resumed from (GRIDCKPT_RESTORED_EPOCH).
          const log = await readFile(join(dir, 'logs', 'bank+u0.log'), 'utf8');
          expect(log).toMatch(/unit 0 resumes at op \d+ from epoch 1\n/);
        } finally {
          await c.stop();
        }
      });
    });
  }
});

describe('a flipped byte in a page file', () => {
  it('is caught at restore naming file and page, and restore falls back to the epoch before', async () => {
    await withTmp('flip', async (dir) => {
      const nodeId = uniqueNodeId('flip');
      const storeDir = join(dir, 'store');
      const a = await startAgent(dir, { nodeId });
      await a.client.startJob({ job: bankJobSpec('bank', { ...params, opsPerUnit: 20_000 }, 100) });
      // Two epochs after the units are busy, so the newest one holds changed pages.
      await untilCommitted(a.client, 'bank', 1);
      const busy = await untilJob(a.client, 'bank', (j) => j.containers.length > 0);
      await untilCommitted(a.client, 'bank', Number(busy.checkpointsCommitted) + 2);
      const pids = await unitPids(a.client, 'bank');
      await a.kill9();
      killGroups(pids);

      const all = await epochDirs(storeDir);
      const committed = await Promise.all(all.map(async (d) => (await readdir(join(storeDir, 'bank', d))).includes('MANIFEST.json')));
      const dirs = all.filter((_, i) => committed[i]);
      const newestDir = join(storeDir, 'bank', dirs[dirs.length - 1]!);
      const newest = BigInt(dirs[dirs.length - 1]!.slice('epoch-'.length));
      const pagesFile = join(newestDir, (await readdir(newestDir)).find((f) => f.endsWith('.pages'))!);
      expect((await stat(pagesFile)).size).toBeGreaterThan(4096);
      const bytes = await readFile(pagesFile);
      bytes[4096 + 17] = bytes[4096 + 17]! ^ 0xff; // the file's second page
      await writeFile(pagesFile, bytes);

      const b = await startAgent(dir, { nodeId });
      try {
        const err = await b.client.restore({ jobId: 'bank', epoch: newest }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(AgentCallError);
        expect((err as AgentCallError).code).toBe(status.DATA_LOSS);
        expect((err as AgentCallError).details).toContain(pagesFile);
        expect((err as AgentCallError).details).toMatch(/bank#\d+/);

        const v = await b.client.verifyEpoch({ jobId: 'bank', epoch: newest });
        expect(v.ok).toBe(false);
        expect(v.errors.join('\n')).toContain(pagesFile);

        const r = await b.client.restore({ jobId: 'bank', epoch: 0n });
        expect(r.skipped.map((s) => s.epoch)).toEqual([newest]);
        expect(r.skipped[0]!.reason).toContain(pagesFile);
        expect(r.epoch!.epoch).toBe(newest - 1n);
        await b.client.stopJob({ jobId: 'bank' });
      } finally {
        await b.stop();
      }
    });
  });
});
