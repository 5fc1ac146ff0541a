import type { DetectorConfig } from '../../detector/config.js';
import type { RoundConfig } from '../../protocol/core/round-types.js';
import type { ClusterAnswer, ClusterCall, Heartbeat, HeartbeatAnswer } from '../../protocol/messages.js';

// The grid supervisor core's inputs, actions and durable catalog.

export interface GridSupervisorConfig {
  gridId: string;
  incarnation: bigint;
  detector: DetectorConfig;
  round: RoundConfig;
  checkpointIntervalMs: number;
  /** How long a cluster's job lease lasts from its heartbeat's send. */
  clusterLeaseMs: number;
  /** The clusters' leases to their agents (nested in ours: a lost cluster's agents outlive it by this). */
  agentLeaseMs: number;
  /** Every call's deadline: a restore's lease, counted by the cluster from receipt, ends by send + this + clusterLeaseMs. */
  callTimeoutMs: number;
  maxRecoveryAttempts: number;
  maxFinalAttempts: number;
  /** A cluster answering busy is asked again after this. */
  retryMs: number;
  maxJobs: number;
  mutants?: ReadonlySet<string>;
}

/** A recovery line: every cluster's epoch of one grid round, and where each unit was at the cut. */
export interface GridLine {
  epoch: bigint;
  clusterEpochs: Record<string, string>;
  unitClusters: Record<string, string>;
}

export type GridJobState = 'running' | 'recovering' | 'completed' | 'failed';

export interface GridJobRow {
  jobId: string;
  units: string[];
  state: GridJobState;
  /** unit -> cluster */
  clusters: Record<string, string>;
  /** The highest epoch ever used: a new round's is above it (recorded before its PREPARE is sent). */
  highestEpoch: string;
  lines: GridLine[];
  lost: string[];
  lastError: string;
}

/** The grid catalog, written whole and atomically; `step` names the core step whose sends wait on it. */
export interface GridCatalogRecord { kind: 'catalog'; jobs: GridJobRow[]; reason: 'line' | 'state'; step: number }

export type GridInput =
  | { kind: 'submit'; reqId: number; jobId: string; units: string[] }
  | { kind: 'clusterHeartbeat'; hb: Heartbeat }
  | { kind: 'clusterAnswer'; cluster: string; reqId: number; answer: ClusterAnswer }
  | { kind: 'clusterUnreachable'; cluster: string; reqId: number; reason: string }
  | { kind: 'persisted'; what: GridCatalogRecord & { lineOf?: { jobId: string; epoch: bigint } } }
  | { kind: 'persistFailed'; what: GridCatalogRecord & { lineOf?: { jobId: string; epoch: bigint } }; reason: string }
  | { kind: 'tick' };

export type GridPersist = GridCatalogRecord & { lineOf?: { jobId: string; epoch: bigint } };

export type GridSend = { to: string; call: ClusterCall };

export type GridReply =
  | { to: string; kind: 'beat'; seq: number; answer: HeartbeatAnswer }
  | { to: 'operator'; kind: 'submitted'; reqId: number; ok: boolean; reason: string };

export interface GridStep {
  persist: GridPersist[];
  send: GridSend[];
  reply: GridReply[];
}
