import type { Logger } from '../common/log.js';
import type { TierRuntime } from '../wire/clients.js';
import { MEMBERSHIP_CHANNEL_OPTIONS } from '../common/grpc-call.js';
import { startMembership } from '../detector/membership.js';

// The agent's tie to its cluster coordinator (see detector/membership.ts):
// each heartbeat answer renews the leases of the jobs it names.

/** Where heartbeat answers renew the agent's job leases (the agent's core). */
export interface LeaseRenewals {
  setLength(leaseMs: number): void;
  renew(jobIds: string[], sentAtMs: number): void;
}

export interface ClusterLinkOptions {
  clusterAddress: string;
  nodeId: string;
  incarnation: bigint;
  agentAddress: string;
  capacityUnits: number;
  leases: LeaseRenewals;
  log: Logger;
  runtime: TierRuntime;
}

export function linkToCluster(o: ClusterLinkOptions): { stop(): void } {
  const client = o.runtime.clients.clusterClient(o.clusterAddress, 2_000, MEMBERSHIP_CHANNEL_OPTIONS);
  const m = startMembership({
    register: () => client.registerNode({ nodeId: o.nodeId, incarnation: o.incarnation, address: o.agentAddress, capacityUnits: o.capacityUnits, labels: {} }),
    beat: (seq, timeoutMs) => client.heartbeat({ nodeId: o.nodeId, incarnation: o.incarnation, seq: BigInt(seq) }, timeoutMs),
    onRegistered: (r) => o.leases.setLength(r.leaseMs || 1_000),
    onLeases: (jobs, sentAt) => o.leases.renew(jobs, sentAt),
    log: o.log,
    time: o.runtime,
  });
  return {
    stop() {
      m.stop();
      client.close();
    },
  };
}
