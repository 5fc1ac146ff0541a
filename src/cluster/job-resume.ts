import { listCommitted } from '../store/index.js';
import type { ClusterJob } from './cluster-job.js';
import type { ClusterCoordinator } from './coordinator.js';
import type { JobRow, JobTable } from './job-table.js';

// A restarted cluster coordinator takes its own jobs back from the job table
// (grid jobs are the grid's to recover: it sees this incarnation as a new
// one). Functions over the coordinator, called by its resume.

/** Resolves with the nodes that have not registered within deadlineMs. */
export type UntilRegistered = (nodes: readonly string[], deadlineMs: number) => Promise<string[]>;

/**
 * Each job waits for its nodes to register again; their heartbeat answers
 * then renew the job's lease. A node that does not come back is handled as
 * failed; units whose lease lapsed meanwhile are restored (their fenced
 * reports on the heartbeats, or a job missing from an agent's report: E4).
 */
export function resumeJobs(c: ClusterCoordinator, table: JobTable | null, untilRegistered: UntilRegistered): void {
  for (const row of table?.all() ?? []) {
    if (row.gridManaged || (row.state !== 'running' && row.state !== 'recovering')) continue;
    const job = c.newJob(row.spec, new Map(Object.entries(row.placement)), false);
    job.partOwners = new Map(Object.entries(row.partOwners));
    job.lastEpoch = row.lastEpoch === null ? null : BigInt(row.lastEpoch);
    job.roundsSinceFull = row.roundsSinceFull;
    job.recoveries = row.recoveries;
    job.needsFull = row.needsFull;
    job.adopted = row.adopted.map((a) => ({ fromCluster: a.fromCluster, storeDir: a.storeDir, epoch: BigInt(a.epoch), holders: new Map(Object.entries(a.holders)) }));
    job.state = 'recovering';
    c.jobs.set(job.jobId, job);
    void resumeJob(c, job, row, untilRegistered);
  }
}

async function resumeJob(c: ClusterCoordinator, job: ClusterJob, row: JobRow, untilRegistered: UntilRegistered): Promise<void> {
  // An epoch committed after the table's last save is the job's newest state.
  const committed = await listCommitted(c.settings.storeDir, job.jobId).catch(() => []);
  const newest = committed.at(-1);
  if (newest && (job.lastEpoch === null || newest.epoch > job.lastEpoch)) {
    job.lastEpoch = newest.epoch;
    if (newest.full) {
      job.partOwners = new Map(job.nodes().map((n) => [n, n]));
      job.adopted = [];
      job.needsFull = false;
    }
  }
  // The epochs a recovery may walk back to (a job the cluster runs alone has one history).
  for (const m of committed) if (job.lastEpoch !== null && m.epoch <= job.lastEpoch) job.committedHere.add(m.epoch);
  const deadline = c.settings.agentLeaseMs * 3;
  const missing = await untilRegistered(job.nodes(), deadline);
  c.log.info({ jobId: job.jobId, lastEpoch: String(job.lastEpoch), missing, was: row.state }, 'job resumed from the job table');
  job.state = 'running';
  if (missing.length > 0) {
    for (const n of missing) c.recoverSoon(job, n, true, `node ${n} did not register again after the coordinator restarted`);
    return;
  }
  c.arm(job);
  c.persist(job);
}
