import type { Logger } from '../common/log.js';
import type { TierRuntime } from '../wire/clients.js';
import { MEMBERSHIP_CHANNEL_OPTIONS } from '../common/grpc-call.js';
import { failpoint } from '../common/failpoints.js';
import { startMembership } from '../detector/membership.js';

// The cluster coordinator's tie to the grid coordinator (see
// detector/membership.ts): each heartbeat answer renews the grid's lease on
// the jobs it names, from the beat's send (the shell feeds it to the core).

export interface GridLinkOptions {
  gridAddress: string;
  clusterId: string;
  incarnation: bigint;
  clusterAddress: string;
  storeDir: string;
  agentLeaseMs: number;
  /** The grid's answer: these jobs are leased from sentAtMs for leaseMs. */
  onLeases(jobs: string[], sentAtMs: number, leaseMs: number): void;
  log: Logger;
  runtime: TierRuntime;
}

export function linkToGrid(o: GridLinkOptions): { stop(): void } {
  let leaseMs = 3_000;
  const client = o.runtime.clients.gridClient(o.gridAddress, 2_000, MEMBERSHIP_CHANNEL_OPTIONS);
  const m = startMembership({
    register: async () => {
      failpoint('cluster.grid-link'); // a test's partition between this cluster and the grid
      return client.registerCluster({
        clusterId: o.clusterId, incarnation: o.incarnation, address: o.clusterAddress, storeDir: o.storeDir, agentLeaseMs: o.agentLeaseMs,
      });
    },
    beat: async (seq, timeoutMs) => {
      failpoint('cluster.grid-link');
      return client.clusterHeartbeat({ clusterId: o.clusterId, incarnation: o.incarnation, seq: BigInt(seq) }, timeoutMs);
    },
    onRegistered: (r) => {
      leaseMs = r.leaseMs || 3_000;
    },
    onLeases: (jobs, sentAt) => o.onLeases(jobs, sentAt, leaseMs),
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
