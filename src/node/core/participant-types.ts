import type { AgentAnswer, AgentCall, Heartbeat, HeartbeatAnswer, RestoreSource } from '../../protocol/messages.js';

// The node participant core's config, inputs and actions (participant.ts).

export interface ParticipantConfig {
  nodeId: string;
  incarnation: bigint;
  capacityUnits: number;
  heartbeatIntervalMs: number;
  freezeTimeoutMs: number;
  /** Live jobs (starting or running) at once: a start past it is refused. */
  maxJobs: number;
  /**
   * Ended jobs (completed, failed, stopped, fenced) remembered for status,
   * reads and their coordinator's final round; past it the one that ended
   * first is forgotten (a `forget` op frees its pages). Default: maxJobs.
   */
  maxEndedJobs?: number;
  /** A job's incremental epochs between full ones when its start names none (local checkpoints). */
  defaultFullEvery: number;
  /** Coordinators whose incarnation is remembered (fencing); the oldest seen is forgotten first. */
  maxCoordinators?: number;
  /** Deliberately broken variants, for the simulator's mutants only. */
  mutants?: ReadonlySet<string>;
}

/** Who asked for a local checkpoint: the agent's own API (`local`) or its periodic timer (no answer). */
export const LOCAL = 'local';

export type ParticipantInput =
  | { kind: 'call'; call: AgentCall }
  /** A checkpoint of one job taken by this agent alone (its own epoch, its own manifest). */
  | { kind: 'localCheckpoint'; reqId: number; jobId: string; full: boolean }
  | { kind: 'heartbeatAnswer'; sentAtMs: number; answer: HeartbeatAnswer }
  /** The operator's delete of a job it runs on its own: stopped if it runs, then forgotten (answered ok). */
  | { kind: 'forgetJob'; reqId: number; jobId: string }
  /**
   * The units of a start are running (or the start failed). restored: the
   * epoch their pages were loaded from, the highest epoch of the job's store
   * and the length of the restored chain (null: a fresh start); job: the
   * units and checkpoint cadence read from the epoch, when the start could
   * not name them (a restore of the job as it was saved).
   */
  | {
    kind: 'spawned'; jobId: string; reqId: number;
    corrupt: { store: string; epoch: bigint; reason: string } | null;
    failed?: string;
    restored?: { epoch: bigint; highestEpoch: bigint; chainLength: number; job?: { units: string[]; intervalMs: number; fullEvery: number } } | null;
  }
  | { kind: 'snapshotTaken'; jobId: string; epoch: bigint; pages: number; bytes: number }
  /** Freeze or snapshot failed: the units are thawed (the core says so) and the epoch is not prepared. */
  | { kind: 'snapshotFailed'; jobId: string; epoch: bigint; stage: 'freeze' | 'snapshot'; reason: string }
  /**
   * The job's units ended: every one exited (ok: all with code 0), or one
   * failed while others still run (live: the job failed, the others are
   * stopped; a job's units are restored together or not at all).
   */
  | { kind: 'unitsExited'; jobId: string; ok: boolean; reason: string; live?: boolean }
  /** A write op finished: the part (or, for a local checkpoint, the whole epoch) is durable. */
  | { kind: 'written'; jobId: string; epoch: bigint; reqId: number }
  | { kind: 'partFailed'; jobId: string; epoch: bigint; reqId: number; to: string; reason: string }
  | { kind: 'tick' };

/**
 * Effects on the node's units and store, performed in order per job by the
 * shell; results come back as inputs (spawned, snapshotTaken, written, …).
 */
export type UnitOp =
  | { op: 'spawn'; jobId: string; units: string[]; sources: RestoreSource[]; reqId: number }
  /** graceful: a stop (SIGTERM first); else a fence (SIGKILL, and the job's pages go). */
  | { op: 'kill'; jobId: string; graceful: boolean }
  /** full: the snapshot that follows takes every page (the shell sizes its staging before the freeze). */
  | { op: 'freeze'; jobId: string; epoch: bigint; full: boolean }
  | { op: 'snapshot'; jobId: string; epoch: bigint; full: boolean; parentEpoch: bigint | null }
  | { op: 'thaw'; jobId: string }
  /** The staged snapshot of this epoch will not be written: its pages count as changed again. */
  | { op: 'dropStaging'; jobId: string; epoch: bigint }
  /**
   * Write the staged snapshot of the epoch and fsync it: as this node's part
   * of a coordinated epoch, or (local) as the whole epoch with its manifest.
   */
  | { op: 'write'; jobId: string; epoch: bigint; writer: string; units: string[]; local: boolean; parentEpoch: bigint | null; full: boolean; reqId: number; to: string }
  /**
   * A written part's fate is known: confirmed (the coordinator built on it)
   * or not (its pages count as changed again, so the next epoch has them).
   */
  | { op: 'settle'; jobId: string; epoch: bigint; confirmed: boolean }
  /** The job ended long enough ago to be forgotten (P6): its pages, unit records and secrets go. */
  | { op: 'forget'; jobId: string };

export type ParticipantSend =
  | { to: 'units'; unit: UnitOp }
  | { to: 'cluster'; heartbeat: Heartbeat };

export interface ParticipantReply { to: string; reqId: number; answer: AgentAnswer }

export interface ParticipantStep {
  /** Always empty: a part is written by a unit op (its write may be long and must not hold the core). */
  persist: never[];
  send: ParticipantSend[];
  reply: ParticipantReply[];
}

export type JobState = 'starting' | 'running' | 'completed' | 'fenced' | 'stopped' | 'failed';

/** What the shell may read of a job (status, waiters, events); the core's record stays private. */
export interface JobSummary {
  jobId: string;
  gen: number;
  state: JobState;
  units: string[];
  leaseBound: boolean;
  /** The newest epoch known committed with this node's pages (its own, or confirmed by the coordinator). */
  lastEpoch: bigint | null;
  highestEpoch: bigint;
  committed: number;
  failed: number;
  lastError: string;
  /** A checkpoint step (freeze, snapshot or write) is running. */
  busy: boolean;
}
