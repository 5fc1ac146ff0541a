import type { Logger } from '../common/log.js';
import type { TierRuntime } from '../wire/clients.js';
import { MEMBERSHIP_CHANNEL_OPTIONS } from '../common/grpc-call.js';
import { startMembership } from '../detector/membership.js';
import { failpoint } from '../common/failpoints.js';
import type { JobReport } from './job-reports.js';

// The agent's tie to its cluster coordinator (see detector/membership.ts):
// each heartbeat answer renews the leases of the jobs it names, and each
// heartbeat carries the states of the agent's jobs (push, not poll: see
// job-reports.ts), read as it is sent.
//
// A job's change of state (its units completed, failed, were fenced) is
// also reported at once, between beats, with ReportJobs: the coordinator
// need not wait up to a heartbeat interval to hear of it. It is not a beat
// (a beat out of schedule would be refused by the coordinator's detector as
// stale-seq, or skew its phi estimate), and it is best effort: a report lost
// or refused is carried again by the next beat. At most one is in flight
// and at most one more waits, however many changes come meanwhile.

/** A ReportJobs call's deadline: the next beat repeats it anyway. */
const REPORT_TIMEOUT_MS = 2_000;

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
  /** Every job the agent has, as its heartbeats report them (RunningAgent.jobReports). */
  reports(): JobReport[];
  /** Subscribes to every change of a job's state (RunningAgent.onJobChange); called from inside the agent's step. */
  onJobChange?(listener: () => void): void;
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
    rng: o.runtime.rng,
  });

  const { timers } = o.runtime;
  let stopped = false;
  let timer: unknown = null;
  let inFlight = false;
  let again = false;
  const report = (): void => {
    timer = null;
    if (stopped) return;
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    Promise.resolve()
      .then(() => {
        failpoint('agent.report-jobs'); // tests: reports lost on the way, only the heartbeats carry the states
        return client.reportJobs({ nodeId: o.nodeId, incarnation: o.incarnation, jobs: o.reports() }, REPORT_TIMEOUT_MS);
      })
      .catch(() => undefined) // the next beat carries the same states
      .finally(() => {
        inFlight = false;
        if (again) {
          again = false;
          report();
        }
      });
  };
  // Out of the agent's step first (the listener runs inside it); changes that come together make one report.
  o.onJobChange?.(() => {
    if (!stopped && timer === null) timer = timers.setTimer(report, 0);
  });

  return {
    stop() {
      stopped = true;
      if (timer !== null) timers.clearTimer(timer);
      m.stop();
      client.close();
    },
  };
}
