import type { DetectorConfig } from '../../detector/config.js';
import type { VerdictChange } from '../../detector/monitor.js';
import type { RoundConfig, RoundOutcome } from '../../protocol/core/round-types.js';
import type { RestartPolicy } from '../../protocol/job-spec.js';
import type { AgentAnswer, AgentCall, ClusterAnswer, ClusterCall, ClusterRequest, Heartbeat, HeartbeatAnswer, JobAction, PartRef, RefusalCode } from '../../protocol/messages.js';

// The cluster supervisor core's inputs, actions, durable records (the epoch
// manifests and the job table) and the events a shell drains after a step.

export interface ClusterSupervisorConfig {
  clusterId: string;
  incarnation: bigint;
  heartbeatIntervalMs: number;
  detector: DetectorConfig;
  round: RoundConfig;
  /** How long an agent's job lease lasts from its heartbeat's send. */
  agentLeaseMs: number;
  /** The grid's lease on grid-managed jobs (until the grid's first answer says otherwise). */
  gridLeaseMs: number;
  /** Every call's deadline: a start's lease, counted by the agent from receipt, ends by send + this + agentLeaseMs. */
  callTimeoutMs: number;
  /** A recovery re-plans at most this many times before the job fails. */
  maxRecoveryAttempts: number;
  /** A job whose final round fails this many times ends failed, not completed. */
  maxFinalAttempts: number;
  /** Committed epochs remembered per job (walk-back depth). */
  keepEpochs: number;
  /**
   * A grid job's epoch is made full here once its chain (full epoch and the
   * incrementals on it) would hold more epochs than this (compaction:
   * docs/store-lifecycle.md). Default DEFAULT_MAX_CHAIN_EPOCHS.
   */
  maxChainEpochs?: number;
  maxJobs: number;
  /** How long a job taken back from the job table after a restart waits for its nodes to register again. */
  resumeWaitMs: number;
  mutants?: ReadonlySet<string>;
}

export type ClusterInput =
  | { kind: 'agentHeartbeat'; hb: Heartbeat }
  /** Job states an agent pushed between beats (no beat: neither the detector nor the leases see it). */
  | { kind: 'agentReports'; member: string; incarnation: bigint; jobs: Heartbeat['jobs'] }
  | { kind: 'agentAnswer'; node: string; reqId: number; answer: AgentAnswer }
  /** The call did not reach the agent or got no answer in time. */
  | { kind: 'agentUnreachable'; node: string; reqId: number; reason: string }
  | { kind: 'gridCall'; call: ClusterCall }
  | { kind: 'gridHeartbeatAnswer'; sentAtMs: number; answer: HeartbeatAnswer }
  | { kind: 'persisted'; what: ClusterPersist }
  | { kind: 'persistFailed'; what: ClusterPersist; reason: string }
  | { kind: 'tick' }
  /** An agent registers (RegisterNode): its address is the shell's business; capacity and incarnation are the core's. */
  | { kind: 'nodeRegistered'; reqId: number; nodeId: string; incarnation: bigint; capacityUnits: number }
  /** A request from a local client (CLI): jobs the cluster runs on its own, without a grid. */
  | { kind: 'localCall'; reqId: number; req: LocalRequest }
  /** Garbage collection retired a committed epoch from the store (src/cluster/epoch-collector.ts): no restart may name it. */
  | { kind: 'epochRetired'; jobId: string; epoch: bigint };

export type LocalRequest =
  /** intervalMs 0: no periodic rounds (only on request). fullEvery: every Nth epoch is full (>= 1). */
  | { kind: 'submitJob'; jobId: string; units: string[]; intervalMs: number; fullEvery: number; restartPolicy?: RestartPolicy }
  | { kind: 'checkpoint'; jobId: string }
  /** Job control (supervisor-control.ts); epoch: restore's, null the newest committed. */
  | { kind: 'control'; jobId: string; action: JobAction; epoch: bigint | null };


export type LocalAnswer =
  /** submitJob: placed, and every node's start answered ok; a restore: running again from `epoch`. */
  | { kind: 'ok'; epoch?: bigint | null; skipped?: Array<{ epoch: bigint; reason: string }> }
  /** cancel or delete: the job's state after it ('deleted': forgotten); the nodes that confirmed their stop, and those that did not. */
  | { kind: 'controlled'; state: ClusterJobState | 'deleted'; confirmed: string[]; unconfirmed: string[] }
  /** checkpoint: the round's outcome. */
  | { kind: 'committed'; epoch: bigint; parentEpoch: bigint | null; full: boolean; pages: number; bytes: number; timings: { prepareMs: number; commitMs: number; totalMs: number } }
  | { kind: 'refused'; reason: string; code?: RefusalCode };

/** An epoch's manifest: the commit decision of the cluster (ARCHITECTURE §5). */
export interface ManifestRecord {
  kind: 'manifest';
  jobId: string;
  epoch: bigint;
  parentEpoch: bigint | null;
  full: boolean;
  parts: PartRef[];
  /** unit -> node at the cut (a typed layout, not an opaque job blob). */
  placement: Record<string, string>;
}

/**
 * The job table: what a restarted coordinator needs to take its jobs back.
 * Persisted (through the driver, so before the step's sends) whenever a
 * job's row changes: its state, placement, start gens or committed epochs.
 */
export interface JobRow {
  jobId: string;
  units: string[];
  state: ClusterJobState;
  placement: Record<string, string>;
  /** null: grid-managed. */
  local: { intervalMs: number; fullEvery: number } | null;
  committed: bigint[];
  /**
   * The highest epoch a round of the job used (saved before its PREPARE leaves): a restarted coordinator
   * numbers above it (C3). Optional: a row without it falls back to the newest committed epoch.
   */
  highestEpoch?: bigint;
  needsFull: boolean;
  startGens: Record<string, number>;
  gridGen: number;
  lastError: string;
  recoveries: number;
  /** Absent: the default policy (DEFAULT_RESTART_POLICY); kept only when the submit named another. */
  restartPolicy?: RestartPolicy;
  /** Restores the policy made after unit failures (absent: none). */
  unitRestarts?: number;
}

/**
 * What the driver makes durable before the step's sends. A failed persist is
 * handed back as the same object (the core knows which step it belonged to).
 */
export type ClusterPersist = ManifestRecord | { kind: 'jobRow'; row: JobRow }
  /** A deleted job: its row goes; the highest epoch it used is kept in the table (C3). */
  | { kind: 'jobForgotten'; jobId: string; highestEpoch: bigint };

export type ClusterSend =
  | { to: string; call: AgentCall }
  | { to: 'grid'; heartbeat: Heartbeat };

export type ClusterReply =
  | { to: string; kind: 'beat'; seq: number; answer: HeartbeatAnswer }
  | { to: 'grid'; kind: 'answer'; reqId: number; answer: ClusterAnswer }
  | { to: 'local'; kind: 'answer'; reqId: number; answer: LocalAnswer }
  | { to: string /* nodeId */; kind: 'registered'; reqId: number; answer: { ok: true } | { ok: false; reason: string } };

/** What happened in a step, for Watch streams, logs and metrics (observations, not actions; drained by the shell). */
export type ClusterEvent =
  | { kind: 'nodeRegistered'; nodeId: string; incarnation: bigint }
  | { kind: 'nodeVerdict'; change: VerdictChange }
  | { kind: 'jobState'; jobId: string; from: ClusterJobState | null; to: ClusterJobState; reason: string }
  | { kind: 'jobPlaced'; jobId: string; placement: Record<string, string> }
  /** Deleted by an operator: the job is no longer known here (its epochs stay in the store). */
  | { kind: 'jobForgotten'; jobId: string; highestEpoch: bigint }
  /** A grid share now shows completed (its job stays running here for the grid's final round): see showShares. */
  | { kind: 'shareCompleted'; jobId: string; reason: string }
  | { kind: 'roundStarted'; jobId: string; epoch: bigint; parentEpoch: bigint | null; full: boolean; participants: string[] }
  | { kind: 'roundFinished'; jobId: string; outcome: RoundOutcome }
  | { kind: 'recoveryStarted'; jobId: string; nodeId: string | null; reason: string }
  | { kind: 'recovered'; jobId: string; ms: number; ok: boolean }
  /** The grid restored the job here at `epoch` (null: anew): the store's epochs above it are none of the grid's lines any more. */
  | { kind: 'gridRestored'; jobId: string; epoch: bigint | null }
  /** An accepted grid PREPARE named `epoch` as its parent: it is the grid's newest recovery line (retention counts it). */
  | { kind: 'gridLine'; jobId: string; epoch: bigint }
  /** A grid call refused: it came from a deposed grid, its fence older than the one this cluster has seen (F1). */
  | { kind: 'staleGridCall'; request: ClusterRequest['kind']; jobId: string; reason: string };

export interface ClusterStep {
  persist: ClusterPersist[];
  send: ClusterSend[];
  reply: ClusterReply[];
}

export type ClusterJobState = 'starting' | 'running' | 'recovering' | 'completed' | 'failed' | 'fenced' | 'stopped';
