// Zero pages through a real agent (docs/store-lifecycle.md): a unit opens a
// 16,384-page container and writes one page; the checkpoint's data file holds
// that one page (not 64 MiB), the epoch verifies every page, and a restore
// gives the written page back and zeros elsewhere.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { epochDir } from '../../src/store/index.js';
import { UnitClient } from '../../src/unit/client.js';
import { announcingUnit, startAgent, uniqueNodeId, unitEnvOf } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';

describe('zero pages through an agent', () => {
  it('a 16,384-page container with one page written checkpoints one page of data, and restores', async () => {
    await withTmp('zero-agent', async (dir) => {
      const nodeId = uniqueNodeId('zero');
      const agent = await startAgent(dir, { nodeId });
      try {
        const envFile = join(dir, 'u.env');
        await agent.client.startJob({ job: { jobId: 'z', units: [announcingUnit('u', envFile)], checkpointIntervalMs: 0, fullEvery: 0 } });
        const u = new UnitClient(await unitEnvOf(envFile), 10_000);
        try {
          await u.openContainer('big', { pageCount: 16_384, create: true });
          await u.write('big', 5, 0, Buffer.from('hello'));
        } finally {
          u.close();
        }
        const r = await agent.client.checkpoint({ jobId: 'z', full: true });
        const epoch = r.epoch!.epoch;
        const pages = await stat(join(epochDir(join(dir, 'store'), 'z', epoch), `${nodeId}.pages`));
        expect(pages.size).toBe(4096);
        const v = await agent.client.verifyEpoch({ jobId: 'z', epoch });
        expect(v.ok, v.errors.join('; ')).toBe(true);
        expect(v.pagesChecked).toBeGreaterThanOrEqual(16_384n);

        await agent.client.restore({ jobId: 'z', epoch });
        const read = async (page: number) => Buffer.from((await agent.client.readContainer({ jobId: 'z', container: 'big', firstPage: page, pageCount: 1 })).data);
        expect((await read(5)).subarray(0, 5).toString()).toBe('hello');
        expect((await read(0)).every((b) => b === 0)).toBe(true);
        expect((await read(16_383)).every((b) => b === 0)).toBe(true);
      } finally {
        await agent.stop();
      }
    });
  });
});
