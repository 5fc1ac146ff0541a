import type { ClusterClient } from '../../src/wire/cluster-client.js';
import type { ClusterStatusResponse } from '../../src/gen/gridckpt/v1/cluster.js';
import type { GridClient } from '../../src/wire/grid-client.js';
import type { GridStatusResponse } from '../../src/gen/gridckpt/v1/grid.js';
import { untilStatus } from '../../src/wire/watch-until.js';
import { realRuntime } from '../../src/wire/real-clients.js';

// Waiting for a coordinator's status to satisfy a condition: the status is
// read once the coordinator has subscribed us to its Watch stream, and again
// at each event it pushes (nodes, jobs, rounds and recoveries all change with
// an event), never on a timer. The condition is checked on the status read.

export function untilCluster(c: ClusterClient, ok: (s: ClusterStatusResponse) => boolean, what: string, deadlineMs = 120_000): Promise<ClusterStatusResponse> {
  return untilStatus(realRuntime(), c, ok, what, deadlineMs);
}

/** A grid that does not answer (restarting) is watched again once it is back. */
export function untilGrid(c: GridClient, ok: (s: GridStatusResponse) => boolean, what: string, deadlineMs = 60_000): Promise<GridStatusResponse> {
  return untilStatus(realRuntime(), c, ok, what, deadlineMs);
}
