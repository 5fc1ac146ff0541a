import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { announcingUnit, startAgent, uniqueNodeId, unitEnvOf } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';
import { UnitClient, UnitApiError } from '../../src/unit/client.js';

// The unit API over its real Unix socket: bad input gets the right status
// and a message naming the bad value; nothing is half applied; the agent
// stays up. The test borrows the identity of a real unit process.

async function codeOf(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(UnitApiError);
  return { code: (err as UnitApiError).code, details: (err as UnitApiError).details };
}

describe('unit API', () => {
  it('rejects bad input clearly and applies batches whole or not at all', async () => {
    await withTmp('unitapi', async (dir) => {
      const agent = await startAgent(dir, { nodeId: uniqueNodeId('api') });
      try {
        const envFile = join(dir, 'idle.env');
        await agent.client.startJob({
          job: { jobId: 'j1', units: [announcingUnit('idle', envFile)], checkpointIntervalMs: 0, fullEvery: 0 },
        });
        const env = await unitEnvOf(envFile);
        const sock = await stat(env.socket);
        expect(sock.isSocket()).toBe(true);
        expect(sock.mode & 0o777).toBe(0o600);
        const u = new UnitClient(env, 10_000);
        try {
          const c = await u.openContainer('data', { pageCount: 4, create: true });
          expect(c).toEqual({ name: 'data', pageCount: 4, pageBytes: 4096, created: true });
          expect((await u.openContainer('data', { pageCount: 4, create: true })).created).toBe(false);
          await u.write('data', 1, 10, Buffer.from('hello'));
          expect((await u.read('data', 1, 10, 5)).toString()).toBe('hello');

          let e = await codeOf(u.read('data', 9, 0, 1));
          expect(e.code).toBe(status.INVALID_ARGUMENT);
          expect(e.details).toMatch(/page 9/);
          e = await codeOf(u.read('data', 0, 4000, 200));
          expect(e.code).toBe(status.INVALID_ARGUMENT);
          expect(e.details).toMatch(/4000/);
          e = await codeOf(u.read('nope', 0, 0, 1));
          expect(e.code).toBe(status.NOT_FOUND);
          expect(e.details).toMatch(/"nope"/);
          e = await codeOf(u.openContainer('../etc', { pageCount: 1, create: true }));
          expect(e.code).toBe(status.INVALID_ARGUMENT);
          expect(e.details).toMatch(/"\.\.\/etc"/);
          e = await codeOf(u.openContainer('data', { pageCount: 7 }));
          expect(e.code).toBe(status.INVALID_ARGUMENT);

          const tooMany = Array.from({ length: 257 }, (_, i) => ({ container: 'data', page: 0, offset: i, data: Buffer.from([1]) }));
          e = await codeOf(u.batch(tooMany));
          expect([status.INVALID_ARGUMENT, status.RESOURCE_EXHAUSTED]).toContain(e.code);
          expect(e.details).toMatch(/257/);

          // One bad write in a batch: none of the batch lands.
          e = await codeOf(u.batch([
            { container: 'data', page: 2, offset: 0, data: Buffer.from('first') },
            { container: 'data', page: 3, offset: 4093, addI64: 1n },
          ]));
          expect(e.code).toBe(status.INVALID_ARGUMENT);
          expect(e.details).toMatch(/4093/);
          expect((await u.read('data', 2, 0, 5)).equals(Buffer.alloc(5))).toBe(true);

          expect(await u.batch([
            { container: 'data', page: 2, offset: 0, data: Buffer.from('first') },
            { container: 'data', page: 3, offset: 8, addI64: -5n },
          ])).toBe(2);
          expect(await u.readI64('data', 3, 8)).toBe(-5n);

          const impostor = new UnitClient({ ...env, token: 'not-the-token' }, 10_000);
          e = await codeOf(impostor.read('data', 0, 0, 1));
          expect(e.code).toBe(status.PERMISSION_DENIED);
          impostor.close();

          const s = await agent.client.status();
          expect(s.jobs[0]!.state).toBe('running');
        } finally {
          u.close();
        }
        await agent.client.stopJob({ jobId: 'j1' });
      } finally {
        await agent.stop();
      }
    });
  });
});
