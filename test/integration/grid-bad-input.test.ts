import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { spawnService } from '../helpers/services.js';
import { GridClient } from '../../src/wire/grid-client.js';
import { withTmp } from '../helpers/tmp.js';

// The grid coordinator's gRPC edge: what the grid relies on is checked on
// entry and refused with INVALID_ARGUMENT naming the bad value (not accepted
// and failed later on every cluster); a submit with no cluster to run it is
// UNAVAILABLE; the grid stays up and has recorded nothing.

const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';
const unit = (unitId: string) => ({ unitId, command: '/bin/true', args: [], env: {} });

async function refusal(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code: number; details: string };
  }
  throw new Error('accepted');
}

describe('grid coordinator: bad input', () => {
  it('refuses bad registrations, heartbeats and job specs with INVALID_ARGUMENT naming the value, and keeps serving', async () => {
    await withTmp('grid-bad', async (dir) => {
      const grid = await spawnService('grid', ['--data-dir', join(dir, 'grid'), '--metrics-listen', 'none', '--listen', '127.0.0.1:0'], process.env, logs);
      const client = new GridClient(grid.ready.grpc);
      try {
        const reg = { clusterId: 'ca', incarnation: 1n, address: '127.0.0.1:1', storeDir: join(dir, 'store') };
        for (const [agentLeaseMs, shown] of [[0, '0'], [3_600_001, '3600001']] as const) {
          const r = await refusal(client.registerCluster({ ...reg, agentLeaseMs }));
          expect(r.code).toBe(status.INVALID_ARGUMENT);
          expect(r.details).toContain(`agent_lease_ms ${shown}`);
        }
        const beat = await refusal(client.clusterHeartbeat({ clusterId: 'ca', incarnation: 1n, seq: 2n ** 60n, jobs: [], freeUnits: 0 }));
        expect(beat.code).toBe(status.INVALID_ARGUMENT);
        expect(beat.details).toContain(`seq ${2n ** 60n}`);
        const job = (units: ReturnType<typeof unit>[], checkpointIntervalMs = 0) => ({ jobId: 'j', units, checkpointIntervalMs, fullEvery: 0 });
        const twice = await refusal(client.submitGridJob({ job: job([unit('u0'), unit('u0')]) }));
        expect([twice.code, twice.details]).toEqual([status.INVALID_ARGUMENT, 'job j names unit "u0" twice']);
        const badName = await refusal(client.submitGridJob({ job: job([unit('a b')]) }));
        expect(badName.code).toBe(status.INVALID_ARGUMENT);
        expect(badName.details).toContain('unit id');
        const interval = await refusal(client.submitGridJob({ job: job([unit('u0')], 5) }));
        expect(interval.code).toBe(status.INVALID_ARGUMENT);
        expect(interval.details).toContain('bad checkpoint interval 5 ms');
        // A good spec, but no cluster to run it.
        const none = await refusal(client.submitGridJob({ job: job([unit('u0')]) }));
        expect([none.code, none.details]).toEqual([status.UNAVAILABLE, 'no alive cluster is registered']);
        const s = await client.status();
        expect([s.clusters, s.jobs]).toEqual([[], []]);
      } finally {
        client.close();
        grid.child.kill('SIGTERM');
        await grid.exited;
      }
    });
  }, 60_000);
});
