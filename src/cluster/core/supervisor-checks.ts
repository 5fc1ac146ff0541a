import { isLive, type ClusterState } from './supervisor-state.js';

// The cluster supervisor core's invariant checks (C1..C7, stated in
// supervisor.ts), and the round core's of each job: each throws on the
// first one broken.

export function checkClusterInvariants(st: ClusterState): void {
  const fail = (m: string): never => { throw new Error(`cluster ${st.config.clusterId}: ${m}`); };
  if (st.jobs.size > st.config.maxJobs) fail('C7: too many jobs');
  for (const j of st.jobs.values()) {
    j.round.checkInvariants();
    if (j.committed.length > st.config.keepEpochs) fail(`C7: job ${j.jobId} remembers too many epochs`);
    if (j.restart && j.round.status().phase !== 'idle') fail(`C4: job ${j.jobId} runs a round during a restart`);
    for (const n of j.placement.values()) if (!st.nodes.has(n)) fail(`C2: job ${j.jobId} placed on unregistered node ${n}`);
    if (isLive(j) && st.nowMs > j.gridLeaseUntilMs) fail(`C6: job ${j.jobId} is ${j.state} past its grid lease`);
    if (j.restart?.phase === 'restoring' && !st.mutant('restore-before-lease-lapse')) {
      for (const n of j.restart.lost) {
        const e = st.nodes.get(n);
        if (e && st.nowMs < e.lastGrantMs + st.config.agentLeaseMs && [...j.placement.values()].includes(n)) fail(`C1: job ${j.jobId} restores while lost node ${n} may hold a lease`);
      }
    }
  }
}
