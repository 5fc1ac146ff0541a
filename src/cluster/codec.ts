import type * as pb from '../gen/gridckpt/v1/cluster.js';
import { invalidArgument } from '../common/errors.js';
import { checkName } from '../common/names.js';

// Wire -> domain for what agents send the cluster coordinator. Bad input is
// refused with INVALID_ARGUMENT (CONVENTIONS 5), never asserted on.

/** A job's state as an agent reports it (restoring: a start under way). */
export type AgentJobState = 'running' | 'restoring' | 'completed' | 'failed' | 'stopped' | 'fenced';

export const AGENT_JOB_STATES: readonly AgentJobState[] = ['running', 'restoring', 'completed', 'failed', 'stopped', 'fenced'];

/** One job as an agent reported it on a heartbeat, with the gen of the start it reports on. */
export interface JobReport {
  jobId: string;
  state: AgentJobState;
  gen: bigint;
  lastError: string;
}

/** A heartbeat names at most this many jobs (an agent runs at most a few dozen). */
export const MAX_REPORTED_JOBS = 1_024;
/** A report's last_error is at most this long (agents cut theirs to 1,024). */
export const MAX_REPORT_ERROR_CHARS = 4_096;

export function jobReportsFromPb(reports: readonly pb.JobReport[]): JobReport[] {
  if (reports.length > MAX_REPORTED_JOBS) throw invalidArgument(`a heartbeat reports ${reports.length} jobs; at most ${MAX_REPORTED_JOBS}`);
  const seen = new Set<string>();
  return reports.map((r) => {
    const jobId = checkName('reported job id', r.jobId);
    if (seen.has(jobId)) throw invalidArgument(`job ${jobId} is reported twice in one heartbeat`);
    seen.add(jobId);
    if (!(AGENT_JOB_STATES as readonly string[]).includes(r.state)) {
      throw invalidArgument(`job ${jobId} reported in state ${JSON.stringify(r.state)}: expected one of ${AGENT_JOB_STATES.join(', ')}`);
    }
    if (r.lastError.length > MAX_REPORT_ERROR_CHARS) throw invalidArgument(`job ${jobId}: last_error of ${r.lastError.length} characters; at most ${MAX_REPORT_ERROR_CHARS}`);
    return { jobId, state: r.state as AgentJobState, gen: r.gen, lastError: r.lastError };
  });
}
