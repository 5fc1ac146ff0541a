import type { AgentJobState as JobState } from './agent.js';

// What the agent tells its cluster about its jobs on every heartbeat (push,
// not poll): each job's state, tagged with the gen of the start it belongs
// to. The coordinator names each StartJob and Restore it sends with a gen
// and counts a report only if it carries the gen of the last start it sent
// (the cluster core matches it to the start it sent: src/cluster/core/supervisor-nodes.ts), so a report on an earlier run of the job is
// told apart from one on the current run.
//
// A start's gen is recorded only once the start has returned, that is once
// the job's record is the one the start made: a report never pairs an older
// run's state with a newer start's gen. (Paired the other way round — the
// new run's state with the old gen, while the start is still returning —
// the report is ignored as stale and the next beat tells it right.)

/** A job's report: its state now, and which start that state is of. */
export interface JobReport {
  jobId: string;
  state: JobState;
  /** 0: the job was started by someone who named no gen (the CLI, an older coordinator). */
  gen: bigint;
  lastError: string;
}

/** A report's last error is cut to this many characters (the cluster takes up to 4,096). */
export const MAX_REPORTED_ERROR_CHARS = 1_024;

/** The gen of the last start of each job that returned; at most one entry per job the agent has. */
export class StartGens {
  private readonly gens = new Map<string, bigint>();

  /** A start or restore of the job that named gen has returned: the job's record is the one it made. */
  started(jobId: string, gen: bigint): void {
    this.gens.set(jobId, gen);
  }

  /** Every job's report, from the agent's job states (one entry per job it has). */
  reports(jobs: ReadonlyArray<{ jobId: string; state: JobState; lastError: string }>): JobReport[] {
    // Gens of jobs the agent has forgotten go (at most one entry per job it has, not per job it ever ran).
    if (this.gens.size > jobs.length) {
      const held = new Set(jobs.map((j) => j.jobId));
      for (const id of this.gens.keys()) if (!held.has(id)) this.gens.delete(id);
    }
    return jobs.map((j) => ({
      jobId: j.jobId,
      state: j.state,
      gen: this.gens.get(j.jobId) ?? 0n,
      lastError: j.lastError.slice(0, MAX_REPORTED_ERROR_CHARS),
    }));
  }
}
