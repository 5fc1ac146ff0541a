import { performance } from 'node:perf_hooks';
import type { ClusterClient } from '../../src/wire/cluster-client.js';
import type { ClusterStatusResponse } from '../../src/gen/gridckpt/v1/cluster.js';
import type { GridClient } from '../../src/wire/grid-client.js';
import type { GridStatusResponse } from '../../src/gen/gridckpt/v1/grid.js';

const json = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : x));

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

/** Polls the grid's status until ok; a grid that does not answer (restarting) is asked again. */
export async function untilGrid(c: GridClient, ok: (s: GridStatusResponse) => boolean, what: string, deadlineMs = 60_000): Promise<GridStatusResponse> {
  const end = performance.now() + deadlineMs;
  for (;;) {
    const s = await c.status().catch(() => null);
    if (s && ok(s)) return s;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}: ${json(s)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
