import type { DetectorConfig } from '../../detector/config.js';
import type { RoundConfig } from '../../protocol/core/round-types.js';
import type { AgentAnswer, AgentCall, ClusterAnswer, ClusterCall, Heartbeat, HeartbeatAnswer, PartRef } from '../../protocol/messages.js';

// The cluster supervisor core's inputs, actions and durable record.

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
  maxJobs: number;
  mutants?: ReadonlySet<string>;
}

export type ClusterInput =
  | { kind: 'agentHeartbeat'; hb: Heartbeat }
  | { kind: 'agentAnswer'; node: string; reqId: number; answer: AgentAnswer }
  /** The call did not reach the agent or got no answer in time. */
  | { kind: 'agentUnreachable'; node: string; reqId: number; reason: string }
  | { kind: 'gridCall'; call: ClusterCall }
  | { kind: 'gridHeartbeatAnswer'; sentAtMs: number; answer: HeartbeatAnswer }
  | { kind: 'persisted'; what: ClusterPersist }
  | { kind: 'persistFailed'; what: ClusterPersist; reason: string }
  | { kind: 'tick' };

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

export type ClusterPersist = ManifestRecord;

export type ClusterSend =
  | { to: string; call: AgentCall }
  | { to: 'grid'; heartbeat: Heartbeat };

export type ClusterReply =
  | { to: string; kind: 'beat'; seq: number; answer: HeartbeatAnswer }
  | { to: 'grid'; kind: 'answer'; reqId: number; answer: ClusterAnswer };

export interface ClusterStep {
  persist: ClusterPersist[];
  send: ClusterSend[];
  reply: ClusterReply[];
}

export type ClusterJobState = 'starting' | 'running' | 'recovering' | 'completed' | 'failed' | 'fenced' | 'stopped';
