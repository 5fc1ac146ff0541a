import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { join } from 'node:path';
import { announcingUnit, startAgent, uniqueNodeId, unitEnvOf } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';
import { UnitClient, UnitApiError } from '../../src/unit/client.js';

// A unit reaches only its own job's containers (issue 8, point 1): its token
// is bound to its job and unit, so a unit that names another job — with that
// job's unit id or its own — is refused with PERMISSION_DENIED, whether or
// not that job exists, and the other job's pages are untouched.

async function codeOf(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(UnitApiError);
  return { code: (err as UnitApiError).code, details: (err as UnitApiError).details };
}

describe('unit isolation', () => {
  it("a unit cannot read, write or open another job's containers", async () => {
    await withTmp('unitiso', async (dir) => {
      const agent = await startAgent(dir, { nodeId: uniqueNodeId('iso') });
      const clients: UnitClient[] = [];
      try {
        for (const job of ['alice', 'mallory']) {
          await agent.client.startJob({ job: { jobId: job, units: [announcingUnit('u0', join(dir, `${job}.env`))], checkpointIntervalMs: 0, fullEvery: 0 } });
        }
        const aliceEnv = await unitEnvOf(join(dir, 'alice.env'));
        const malloryEnv = await unitEnvOf(join(dir, 'mallory.env'));
        const alice = new UnitClient(aliceEnv, 10_000);
        clients.push(alice);
        await alice.openContainer('secret', { pageCount: 1, create: true });
        await alice.write('secret', 0, 0, Buffer.from('alice'));

        // Mallory's own token, naming alice's job (and the unit id alice's unit has there).
        const asAlice = new UnitClient({ ...malloryEnv, jobId: 'alice' }, 10_000);
        clients.push(asAlice);
        for (const call of [
          asAlice.read('secret', 0, 0, 5),
          asAlice.write('secret', 0, 0, Buffer.from('evil!')),
          asAlice.openContainer('secret', {}),
          asAlice.batch([{ container: 'secret', page: 0, offset: 0, addI64: 1n }]),
        ]) {
          const e = await codeOf(call);
          expect(e.code).toBe(status.PERMISSION_DENIED);
          expect(e.details).toMatch(/job "alice"/);
        }
        // A job that does not exist is refused the same way: no probing which jobs run here.
        const asNobody = new UnitClient({ ...malloryEnv, jobId: 'nobody' }, 10_000);
        clients.push(asNobody);
        const e = await codeOf(asNobody.read('secret', 0, 0, 5));
        expect(e.code).toBe(status.PERMISSION_DENIED);

        // Mallory's containers are its job's own: the name does not reach alice's.
        const mallory = new UnitClient(malloryEnv, 10_000);
        clients.push(mallory);
        expect((await codeOf(mallory.read('secret', 0, 0, 5))).code).toBe(status.NOT_FOUND);
        expect((await alice.read('secret', 0, 0, 5)).toString()).toBe('alice');
      } finally {
        for (const c of clients) c.close();
        await agent.stop();
      }
    });
  });
});
