import type { DetectorConfig } from '../../detector/config.js';
import type { VerdictChange } from '../../detector/monitor.js';
import type { CommittedOutcome, RoundConfig, RoundOutcome } from '../../protocol/core/round-types.js';
import type { ClusterAnswer, ClusterCall, Heartbeat, HeartbeatAnswer, JobAction } from '../../protocol/messages.js';

// The grid supervisor core's inputs, actions and durable catalog.

export interface GridSupervisorConfig {
  gridId: string;
  incarnation: bigint;
  /**
   * The leader's election revision when grid coordinators elect one through etcd (0 or absent without etcd): with
   * the incarnation, the fence every call and heartbeat answer carries (protocol/grid-fence.ts).
   */
  leaderTerm?: bigint;
  /**
   * Whether an earlier grid (a previous incarnation of this process, or a deposed leader) may have granted leases
   * on the catalog's jobs (absent: incarnation > 1). A cluster it has not heard from is then held granted until the
   * calls that grid may still have in flight reach their deadline (G1).
   */
  resumed?: boolean;
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

/** stopped: cancelled by an operator (job control); restorable. */
export type GridJobState = 'running' | 'recovering' | 'completed' | 'failed' | 'stopped';

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
  /** Recoveries that ended well (absent in catalogs written before it was kept). */
  recoveries?: number;
  /** The job's round period (absent: the config's checkpointIntervalMs). */
  intervalMs?: number;
  /**
   * The gen of the job's last submit or restore (absent: 0): the shares' reports name it, so a grid that takes the
   * job over (restarted, or elected after a deposed leader) counts them; without it a share restored once before
   * the takeover reported on a gen the new grid ignored, and the job never ended.
   */
  gen?: number;
}

/** The grid catalog, written whole and atomically; `step` names the core step whose sends wait on it. */
export interface GridCatalogRecord {
  kind: 'catalog';
  jobs: GridJobRow[];
  /** Deleted jobs' highest epochs (decimal), kept so that a job under the id numbers above them (G3); absent: none. */
  forgotten?: Record<string, string>;
  reason: 'line' | 'state';
  step: number;
}

export type GridInput =
  /** intervalMs: the job's round period (absent or 0: checkpointIntervalMs). */
  | { kind: 'submit'; reqId: number; jobId: string; units: string[]; intervalMs?: number }
  /** RegisterCluster: the cluster (its store is named by its id) and the lease it gives its agents. */
  | { kind: 'clusterRegistered'; reqId: number; clusterId: string; incarnation: bigint; agentLeaseMs: number }
  /** CheckpointGridJob: one grid round of the job now (after the one running), answered with its outcome. */
  | { kind: 'checkpoint'; reqId: number; jobId: string }
  /** Job control (supervisor-control.ts); line: restore's, null the newest. */
  | { kind: 'control'; reqId: number; jobId: string; action: JobAction; line: bigint | null }
  | { kind: 'clusterHeartbeat'; hb: Heartbeat }
  | { kind: 'clusterAnswer'; cluster: string; reqId: number; answer: ClusterAnswer }
  | { kind: 'clusterUnreachable'; cluster: string; reqId: number; reason: string }
  | { kind: 'persisted'; what: GridCatalogRecord & { lineOf?: { jobId: string; epoch: bigint } } }
  | { kind: 'persistFailed'; what: GridCatalogRecord & { lineOf?: { jobId: string; epoch: bigint } }; reason: string }
  | { kind: 'tick' };

export type SubmitRefusal = 'already-exists' | 'resource-exhausted' | 'unavailable';

export type GridPersist = GridCatalogRecord & { lineOf?: { jobId: string; epoch: bigint } };

export type GridSend = { to: string; call: ClusterCall };

export type GridReply =
  | { to: string; kind: 'beat'; seq: number; answer: HeartbeatAnswer }
  | { to: 'operator'; kind: 'submitted'; reqId: number; ok: boolean; reason: string; /** Why not (ok false): the status the shell answers with. */ code?: SubmitRefusal }
  | { to: string; kind: 'registered'; reqId: number; ok: boolean; reason: string }
  | { to: 'operator'; kind: 'checkpointed'; reqId: number; answer: CheckpointAnswer }
  | { to: 'operator'; kind: 'controlled'; reqId: number; answer: ControlAnswer };

/** A job control request's answer: the job's state after it (its line, for a restore), or why not. */
export type ControlAnswer =
  | { kind: 'done'; state: GridJobState | 'deleted'; line: bigint | null; passedOver: string[]; confirmed: string[]; unconfirmed: string[] }
  | { kind: 'refused'; code: 'not-found' | 'failed-precondition' | 'aborted'; reason: string };

/** A checkpoint request's answer: the committed round and its line, or why there was none. */
export type CheckpointAnswer =
  | { kind: 'committed'; outcome: CommittedOutcome; line: GridLine }
  | { kind: 'refused'; code: 'not-found' | 'failed-precondition' | 'aborted'; reason: string };

/** What happened, for the shell's Watch stream, metrics and logs (drainEvents). */
export type GridEvent =
  | { kind: 'clusterRegistered'; clusterId: string; incarnation: bigint }
  | { kind: 'clusterVerdict'; change: VerdictChange }
  | { kind: 'jobPlaced'; jobId: string; clusters: Record<string, string> }
  | { kind: 'jobState'; jobId: string; from: GridJobState | null; to: GridJobState; reason: string }
  /** Deleted by an operator (its epochs stay in the clusters' stores). */
  | { kind: 'jobForgotten'; jobId: string; highestEpoch: bigint }
  | { kind: 'roundStarted'; jobId: string; epoch: bigint; parentEpoch: bigint | null; full: boolean; participants: string[] }
  | { kind: 'roundFinished'; jobId: string; outcome: RoundOutcome }
  | { kind: 'recoveryStarted'; jobId: string; reason: string }
  | { kind: 'recovered'; jobId: string; ms: number; ok: boolean; detail: string };

/** A job as GridStatus shows it. */
export interface GridJobView {
  jobId: string;
  state: GridJobState;
  units: string[];
  clusters: Map<string, string>;
  lines: GridLine[];
  roundsCommitted: number;
  roundsAborted: number;
  recoveries: number;
  lastError: string;
}

/** A cluster as GridStatus shows it (the shell adds its address and store). */
export interface GridClusterView {
  clusterId: string;
  incarnation: bigint;
  verdict: string;
  registered: boolean;
  phi: number;
  silenceMs: number;
  freeUnits: number;
}

export interface GridStep {
  persist: GridPersist[];
  send: GridSend[];
  reply: GridReply[];
}
