import type { Logger } from '../common/log.js';
import type { TierRuntime } from '../wire/clients.js';
import { MEMBERSHIP_CHANNEL_OPTIONS } from '../common/grpc-call.js';
import { startMembership } from '../detector/membership.js';
import type { LeaseKeeper } from '../detector/lease-keeper.js';
import type { JobReport } from './job-reports.js';

// The agent's tie to its cluster coordinator (see detector/membership.ts):
// each heartbeat answer renews the leases of the jobs it names, and each
// heartbeat carries the states of the agent's jobs (push, not poll: see
// job-reports.ts), read as it is sent. A job that ends is reported on the
// next beat, so the coordinator hears of it within one heartbeat interval
// (plus the trip); an extra beat out of schedule would be refused by the
// coordinator's detector (stale-seq) or skew its phi estimate.

export interface ClusterLinkOptions {
  clusterAddress: string;
  nodeId: string;
  incarnation: bigint;
  agentAddress: string;
  capacityUnits: number;
  leases: LeaseKeeper;
  /** Every job the agent has, as its heartbeats report them (RunningAgent.jobReports). */
  reports(): JobReport[];
  log: Logger;
  runtime: TierRuntime;
}

export function linkToCluster(o: ClusterLinkOptions): { stop(): void } {
  const client = o.runtime.clients.clusterClient(o.clusterAddress, 2_000, MEMBERSHIP_CHANNEL_OPTIONS);
  const m = startMembership({
    register: () => client.registerNode({ nodeId: o.nodeId, incarnation: o.incarnation, address: o.agentAddress, capacityUnits: o.capacityUnits, labels: {} }),
    beat: (seq, timeoutMs) => client.heartbeat({
      nodeId: o.nodeId, incarnation: o.incarnation, seq: BigInt(seq), jobs: o.reports(), reportsJobs: true,
    }, timeoutMs),
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
