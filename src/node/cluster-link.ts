import type { Logger } from '../common/log.js';
import { ClusterClient } from '../cluster/cluster-client.js';
import { startMembership } from '../detector/membership.js';

// The agent's tie to its cluster coordinator (see detector/membership.ts).

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
  const m = startMembership({
    register: () => client.registerNode({ nodeId: o.nodeId, incarnation: o.incarnation, address: o.agentAddress, capacityUnits: o.capacityUnits, labels: {} }),
    beat: async (seq, timeoutMs) => (await client.heartbeat({ nodeId: o.nodeId, incarnation: o.incarnation, seq: BigInt(seq) }, timeoutMs)).known,
    log: o.log,
  });
  return {
    stop() {
      m.stop();
      client.close();
    },
  };
}
