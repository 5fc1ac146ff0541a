import { rowKey, rowOf } from './supervisor-resume.js';
import { MAX_EVENTS, MAX_INCARNATION, isLive, type ClusterState } from './supervisor-state.js';

// The cluster supervisor core's invariant checks (C1..C10, stated in
// supervisor.ts), and the round core's of each job: each throws on the
// first one broken.

export function checkClusterInvariants(st: ClusterState): void {
  const fail = (m: string): never => { throw new Error(`cluster ${st.config.clusterId}: ${m}`); };
  if (st.jobs.size > st.config.maxJobs) fail('C7: too many jobs');
  if (st.events.length > MAX_EVENTS) fail('C7: too many events kept');
  if (st.knownEpochs.size > 4 * st.config.maxJobs || st.knownPlacement.size > 4 * st.config.maxJobs) fail('C7: too many grid jobs known from the job table');
  if (st.config.incarnation > MAX_INCARNATION) fail('C8: the incarnation leaves no room for start gens');
  for (const j of st.jobs.values()) {
    j.round.checkInvariants();
    if (j.committed.length > st.config.keepEpochs) fail(`C7: job ${j.jobId} remembers too many epochs`);
    if ((j.restart || j.resume) && j.round.status().phase !== 'idle') fail(`C4: job ${j.jobId} runs a round during a restart`);
    if (j.resume && j.restart) fail(`C4: job ${j.jobId} is resumed and restarted at once`);
    // (An ended job's placement is where its units last ran, for the next start's C1: no claim on the nodes now.)
    for (const n of isLive(j) ? j.placement.values() : []) {
      if (!st.nodes.has(n) && !j.resume && !j.restart?.lost.has(n)) fail(`C2: job ${j.jobId} placed on unregistered node ${n}`);
    }
    if (!j.local && isLive(j) && st.nowMs > j.gridLeaseUntilMs) fail(`C6: job ${j.jobId} is ${j.state} past its grid lease`);
    if (j.local && j.state === 'completed' && j.doneEpoch === null && !st.mutant('complete-without-final-round')) fail(`C5: local job ${j.jobId} completed with its end state in no committed epoch`);
    if (j.local && j.state === 'running' && j.round.status().phase !== 'idle' && j.committed.some((e) => e >= j.round.status().epoch!)) fail(`C3: job ${j.jobId} runs epoch ${j.round.status().epoch}, not above every committed one`);
    if (j.restart?.phase === 'restoring' && !st.mutant('restore-before-lease-lapse')) {
      for (const n of j.restart.lost) {
        if (st.nowMs < st.grantOf(n) + st.config.agentLeaseMs && [...j.placement.values()].includes(n)) fail(`C1: job ${j.jobId} restores while lost node ${n} may hold a lease`);
      }
    }
    // A row not flagged dirty is the one saved: else a change set no flag, and saveRows would never write it.
    if (!j.rowDirty && j.savedRow !== rowKey(rowOf(j))) fail(`C9: job ${j.jobId}'s row changed without its dirty flag: it would not be saved`);
    for (const gen of j.startGens.values()) {
      if (!Number.isSafeInteger(gen)) fail(`C8: job ${j.jobId} has start gen ${gen}, not a safe integer`);
    }
  }
}
