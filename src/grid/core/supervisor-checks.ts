import { KEEP_LINES, type GridState } from './supervisor-state.js';

// The grid supervisor core's invariant checks (G2, G3, G5, G6, stated in
// supervisor.ts), and the round core's of each job: each throws on the
// first one broken.

export function checkGridInvariants(st: GridState): void {
  const fail = (m: string): never => { throw new Error(`grid: ${m}`); };
  if (st.jobs.size > st.config.maxJobs) fail('G6: too many jobs');
  for (const j of st.jobs.values()) {
    j.round.checkInvariants();
    if (j.lines.length > KEEP_LINES) fail(`G6: job ${j.jobId} keeps too many lines`);
    for (const l of j.lines) {
      if (l.epoch > j.highestEpoch) fail(`G3: line ${l.epoch} of job ${j.jobId} above the highest epoch ${j.highestEpoch}`);
      for (const c of new Set(Object.values(l.unitClusters))) if (l.clusterEpochs[c] === undefined) fail(`G2: line ${l.epoch} names no epoch for cluster ${c}`);
    }
    const s = j.round.status();
    if (s.epoch !== null && s.epoch > j.highestEpoch) fail(`G3: round epoch ${s.epoch} above the recorded highest`);
    if (j.recovery && s.phase !== 'idle' && j.recovery.phase === 'restoring') fail(`G5: job ${j.jobId} runs a round during a recovery`);
  }
}
