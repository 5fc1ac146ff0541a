import type { Logger } from '../common/log.js';
import { ClusterClient } from '../cluster/cluster-client.js';
import { startHeartbeats, type HeartbeatLoop } from '../detector/index.js';

// The agent's tie to its cluster coordinator: register (retrying until the
// coordinator answers), then heartbeat at the interval it asks for; when the
// coordinator no longer knows this incarnation, register again.

export interface ClusterLinkOptions {
  clusterAddress: string;
  nodeId: string;
  incarnation: bigint;
  agentAddress: string;
  capacityUnits: number;
  log: Logger;
}

export function linkToCluster(o: ClusterLinkOptions): { stop(): void } {
  const client = new ClusterClient(o.clusterAddress, 2_000);
  let loop: HeartbeatLoop | null = null;
  let stopped = false;
  let retry: NodeJS.Timeout | null = null;

  const register = (): void => {
    if (stopped) return;
    client
      .registerNode({ nodeId: o.nodeId, incarnation: o.incarnation, address: o.agentAddress, capacityUnits: o.capacityUnits, labels: {} })
      .then((r) => {
        if (stopped) return;
        o.log.info({ cluster: r.clusterId, heartbeatIntervalMs: r.heartbeatIntervalMs }, 'registered with the cluster coordinator');
        loop?.stop();
        loop = startHeartbeats({
          intervalMs: r.heartbeatIntervalMs,
          send: async (seq) => {
            const answer = await client.heartbeat({ nodeId: o.nodeId, incarnation: o.incarnation, seq: BigInt(seq) }, r.heartbeatIntervalMs * 5);
            if (!answer.known && !stopped) {
              loop?.stop();
              loop = null;
              register();
            }
          },
          onError: () => undefined, // a missed beat is the detector's business
        });
      })
      .catch((err: unknown) => {
        o.log.warn({ err: String(err) }, 'cluster coordinator not reachable; retrying');
        retry = setTimeout(register, 200);
      });
  };
  register();
  return {
    stop() {
      stopped = true;
      if (retry) clearTimeout(retry);
      loop?.stop();
      client.close();
    },
  };
}
