import { performance } from 'node:perf_hooks';
import type { ClusterClient } from '../../src/cluster/cluster-client.js';
import type { ClusterStatusResponse } from '../../src/gen/gridckpt/v1/cluster.js';

/** Polls the coordinator's status until ok (it has no event stream yet). */
export async function untilCluster(c: ClusterClient, ok: (s: ClusterStatusResponse) => boolean, what: string, deadlineMs = 120_000): Promise<ClusterStatusResponse> {
  const end = performance.now() + deadlineMs;
  for (;;) {
    const s = await c.status();
    if (ok(s)) return s;
    if (performance.now() > end) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
