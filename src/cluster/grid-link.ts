import type { Logger } from '../common/log.js';
import { GridClient } from '../grid/grid-client.js';
import { startMembership } from '../detector/membership.js';

// The cluster coordinator's tie to the grid coordinator (see detector/membership.ts).

export function linkToGrid(o: { gridAddress: string; clusterId: string; incarnation: bigint; clusterAddress: string; log: Logger }): { stop(): void } {
  const client = new GridClient(o.gridAddress, 2_000);
  const m = startMembership({
    register: () => client.registerCluster({ clusterId: o.clusterId, incarnation: o.incarnation, address: o.clusterAddress }),
    beat: async (seq, timeoutMs) => (await client.clusterHeartbeat({ clusterId: o.clusterId, incarnation: o.incarnation, seq: BigInt(seq) }, timeoutMs)).known,
    log: o.log,
  });
  return {
    stop() {
      m.stop();
      client.close();
    },
  };
}
