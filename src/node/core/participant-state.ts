import type { AgentAnswer, RefusalCode } from '../../protocol/messages.js';
import type { JobState, JobSummary, ParticipantConfig, ParticipantStep } from './participant-types.js';

// The participant core's per-job record, what the shell may read of it, the
// answer helpers its parts share, and the invariant checks (participant.ts
// states them, P1..P7).

/** A call waiting for a local checkpoint's outcome. */
export interface LocalWaiter { reqId: number; to: string }

/**
 * A local checkpoint's own parameters, and the manual requests that joined it
 * while it ran (each answered with its outcome, as its own caller is).
 */
export interface LocalStep { full: boolean; parentEpoch: bigint | null; joined: LocalWaiter[] }

/** What a read-only vote's PREPARED says besides its part (the snapshot's figures at the cut). */
export interface ReadOnlyVote { bytes: number; done: boolean }

/** Manual checkpoint requests that join a running one, at most (P6). */
export const MAX_LOCAL_WAITERS = 16;

export interface AgentJob {
  jobId: string;
  gen: number;
  units: string[];
  state: JobState;
  leaseUntilMs: number | null;
  leaseBound: boolean;
  /** Every epoch this job used here, prepared or local (P2). */
  highestEpoch: bigint;
  lastEpoch: bigint | null;
  epochsSinceFull: number;
  fullEvery: number;
  intervalMs: number;
  nextLocalMs: number | null;
  /** The epoch being snapshotted (frozen) and the call to answer ('' to: a periodic checkpoint). */
  freezing: { epoch: bigint; reqId: number; to: string; sinceMs: number; done: boolean; local: LocalStep | null } | null;
  staged: { epoch: bigint; pages: number } | null;
  /** vote: a read-only vote's (empty) part, recorded before its PREPARE is answered with it (not a COMMIT's). */
  writing: { epoch: bigint; pages: number; reqId: number; to: string; local: LocalStep | null; aborted: boolean; vote: ReadOnlyVote | null } | null;
  /** A part written for a coordinator's epoch (its pages), not yet confirmed by a PREPARE that builds on it. */
  written: { epoch: bigint; pages: number } | null;
  starting: { reqId: number; to: string; prior: boolean } | null;
  /** Set (in ending order) the step the job is seen ended: the first ended is forgotten first (P6). */
  endedSeq: number | null;
  committed: number;
  failed: number;
  lastError: string;
}

export const refused = (reason: string, code?: RefusalCode): AgentAnswer => (code ? { kind: 'refused', reason, code } : { kind: 'refused', reason });

/** Answers a call in this step's output; a periodic checkpoint (to: '') has nobody to answer. */
export function reply(out: ParticipantStep, to: string, reqId: number, answer: AgentAnswer): void {
  if (to === '') return;
  out.reply.push({ to, reqId, answer });
}

/** Answers a checkpoint step's caller and, for a local one, every request that joined it. */
export function replyStep(out: ParticipantStep, to: string, reqId: number, local: LocalStep | null, answer: AgentAnswer): void {
  reply(out, to, reqId, answer);
  for (const w of local?.joined.splice(0) ?? []) reply(out, w.to, w.reqId, answer);
}

export function summaryOf(j: AgentJob): JobSummary {
  return {
    jobId: j.jobId, gen: j.gen, state: j.state, units: [...j.units], leaseBound: j.leaseBound, lastEpoch: j.lastEpoch,
    highestEpoch: j.highestEpoch, committed: j.committed, failed: j.failed, lastError: j.lastError, busy: j.freezing !== null || j.writing !== null,
  };
}

export function checkParticipant(p: { config: ParticipantConfig; nowMs: number; jobs: ReadonlyMap<string, AgentJob>; stops: number; incarnations: number }): void {
  const fail = (m: string): never => { throw new Error(`participant ${p.config.nodeId}: ${m}`); };
  const live = [...p.jobs.values()].filter(isLive).length;
  if (live > p.config.maxJobs) fail('P6: too many live jobs');
  if (p.jobs.size - live > maxEnded(p.config) + busyEnded(p.jobs)) fail('P6: too many ended jobs remembered');
  if (p.stops > 4 * p.config.maxJobs + 1) fail('P6: too many remembered stops');
  if (p.incarnations > (p.config.maxCoordinators ?? 16)) fail('P6: too many remembered incarnations');
  for (const j of p.jobs.values()) {
    if (j.freezing && p.nowMs > j.freezing.sinceMs + p.config.freezeTimeoutMs) fail(`P1: job ${j.jobId} frozen past its timeout`);
    if (j.freezing && j.freezing.epoch !== j.highestEpoch) fail(`P2: job ${j.jobId} freezes a stale epoch`);
    if (j.staged && j.staged.epoch !== j.highestEpoch) fail(`P2: job ${j.jobId} stages a stale epoch`);
    if (!isLive(j) && j.state !== 'completed' && (j.freezing || j.staged)) fail(`P5: ${j.state} job ${j.jobId} holds a snapshot or is frozen`);
    if (j.state === 'running' && j.leaseUntilMs !== null && j.leaseUntilMs < p.nowMs && !(p.config.mutants?.has('skip-fence-on-lease-loss') ?? false)) fail(`P4: job ${j.jobId} runs past its lease`);
    if (j.writing && (j.freezing || j.staged)) fail(`P7: job ${j.jobId} snapshots while a write of it runs`);
    const joined = (j.freezing?.local?.joined.length ?? 0) + (j.writing?.local?.joined.length ?? 0);
    if (joined > MAX_LOCAL_WAITERS) fail(`P6: job ${j.jobId} has too many waiting checkpoint requests`);
  }
}

export function stopKey(from: string, jobId: string): string {
  return `${from}\n${jobId}`;
}

export function isLive(j: AgentJob): boolean {
  return j.state === 'running' || j.state === 'starting';
}

export function maxEnded(config: ParticipantConfig): number {
  return config.maxEndedJobs ?? config.maxJobs;
}

/** An ended job that a checkpoint step still holds (a completed job's final round): not forgotten until it is done. */
export function isBusy(j: AgentJob): boolean {
  return j.freezing !== null || j.staged !== null || j.writing !== null || j.written !== null || j.starting !== null;
}

function busyEnded(jobs: ReadonlyMap<string, AgentJob>): number {
  return [...jobs.values()].filter((j) => !isLive(j) && isBusy(j)).length;
}
