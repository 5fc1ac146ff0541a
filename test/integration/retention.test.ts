// Retention for real (docs/store-lifecycle.md): a job checkpointed every
// 100 ms for GRIDCKPT_RETENTION_TEST_MS (default 15 s; the drill is
// 5 minutes: GRIDCKPT_RETENTION_TEST_MS=300000) never has more than
// K + chain bound committed epochs in the store (K = 3 from its spec's
// keep_epochs, chain bound = its fullEvery of 4; one more while the newest
// commit is being collected), its newest K always verify, and the cluster's
// metrics show the store's epochs and the retirements.

import { describe, expect, it } from 'vitest';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { listCommitted, verifyEpoch } from '../../src/store/index.js';
import { realRuntime } from '../../src/wire/real-clients.js';
import { untilStatus } from '../../src/wire/watch-until.js';
import { withProcs } from '../helpers/procs.js';
import { withTmp } from '../helpers/tmp.js';

const DURATION_MS = Number(process.env['GRIDCKPT_RETENTION_TEST_MS'] ?? 15_000);
const KEEP = 3;
const FULL_EVERY = 4;
const params = { accounts: 2_048, units: 2, opsPerUnit: 50_000_000, seed: 9 };

async function metricLines(url: string, name: string): Promise<string[]> {
  return (await (await fetch(url)).text()).split('\n').filter((l) => l.startsWith(name));
}

describe('cluster: retention of a job checkpointed every 100 ms', () => {
  it(`keeps at most K + chain bound epochs for ${DURATION_MS} ms, the newest K restorable`, async () => {
    await withTmp('retention', async (dir) => {
      await withProcs(dir, async (p) => {
        const c = await p.cluster('c1', ['--checkpoint-interval-ms', '100', '--metrics-listen', '127.0.0.1:0']);
        await c.addAgent(4);
        await c.client.submitJob({ job: { ...clusterBankSpec('bank', params, 100), fullEvery: FULL_EVERY, keepEpochs: KEEP } });
        const endMs = realRuntime().clock.wallMs() + DURATION_MS;
        let most = 0;
        let checks = 0;
        // Looked at on every event of the cluster (each round's start and end among them), until the time is up.
        const last = await untilStatus(realRuntime(), c.client, async (s) => {
          const committed = await listCommitted(c.store, 'bank');
          most = Math.max(most, committed.length);
          checks += 1;
          return realRuntime().clock.wallMs() >= endMs && (s.jobs[0]?.roundsCommitted ?? 0n) > 0n;
        }, 'the end of the run', DURATION_MS + 60_000);
        const rounds = Number(last.jobs[0]!.roundsCommitted);
        expect(rounds, 'rounds committed').toBeGreaterThan(2 * (KEEP + FULL_EVERY));
        expect(most, `most committed epochs seen in ${checks} looks over ${rounds} rounds`).toBeLessThanOrEqual(KEEP + FULL_EVERY);
        const committed = await listCommitted(c.store, 'bank');
        for (const m of committed.slice(-KEEP)) expect((await verifyEpoch(c.store, 'bank', m.epoch)).errors).toEqual([]);

        const metrics = c.proc.ready.metrics!;
        expect(await metricLines(metrics, 'gridckpt_cluster_store_epochs{job="bank"}')).toHaveLength(1);
        const retired = Number((await metricLines(metrics, 'gridckpt_cluster_epochs_retired_total '))[0]?.split(' ')[1]);
        expect(retired).toBeGreaterThanOrEqual(rounds - (KEEP + FULL_EVERY));
        expect(Number((await metricLines(metrics, 'gridckpt_cluster_store_free_bytes '))[0]?.split(' ')[1])).toBeGreaterThan(0);
      });
    });
  }, DURATION_MS + 120_000);
});
