import type { GridFence } from './grid-fence.js';

// The domain messages between tiers, shared by the supervisor cores, the
// simulator's network and (through src/wire codecs) gRPC. Every request names
// its sender and the sender's incarnation (CONVENTIONS §4): a member refuses
// one from an older incarnation than it has seen before looking at the rest.
// Requests carry a `reqId` chosen by the sender; the answer echoes it, so a
// core matches answers to what it asked without keeping promises.

import type { RestartPolicy } from './job-spec.js';

/**
 * Where a node's pages come from on a restore: these units' containers as of
 * one committed epoch of one store (each page from the newest epoch of the
 * chain that holds it, whichever node wrote it).
 */
export interface RestoreSource {
  /** The store (a cluster id: each cluster has one shared store). */
  store: string;
  epoch: bigint;
  units: string[];
}

// ---- cluster -> agent --------------------------------------------------------

export type AgentRequest =
  /** gen names this start: the agent's reports on the job carry it, so a report from before it is told apart. */
  /**
   * leaseMs null: not bound to a lease (a job the agent runs on its own).
   * intervalMs and fullEvery: the agent's own periodic checkpoints (0: none; a coordinator's jobs have none).
   */
  | { kind: 'startJob'; jobId: string; units: string[]; sources: RestoreSource[]; leaseMs: number | null; gen: number; intervalMs?: number; fullEvery?: number }
  /** Stops every start of the job below gen, even one still in flight (calls may overtake each other). */
  | { kind: 'stopJob'; jobId: string; gen: number }
  /**
   * lastCommitted: the coordinator's newest committed epoch of the job (absent: not said). A participant learns
   * from it that the part it wrote last was committed, also when this round is full (its parentEpoch is then null).
   */
  | { kind: 'prepare'; jobId: string; epoch: bigint; parentEpoch: bigint | null; full: boolean; lastCommitted?: bigint | null }
  | { kind: 'commit'; jobId: string; epoch: bigint }
  | { kind: 'abort'; jobId: string; epoch: bigint };

export interface AgentCall {
  reqId: number;
  from: string;
  incarnation: bigint;
  req: AgentRequest;
  /**
   * When the caller gives up (on the receiver's clock): a call stepped after
   * it is refused, since a lease it would bind is one the caller never counts.
   */
  deadlineMs?: number;
}

/** What an agent wrote for an epoch: a part file named by its writer. */
export interface PartRef {
  writer: string;
  epoch: bigint;
  units: string[];
  pages: number;
}

export type AgentAnswer =
  /** dropped (to an abort): something of that epoch was staged or written here and is dropped. */
  | { kind: 'ok'; dropped?: boolean }
  /**
   * done: every unit of the job had exited at the cut, so this snapshot holds its end state.
   * digest: of the part this snapshot will be written as (absent: the agent gives none).
   * readOnly: a read-only vote — the snapshot held no page, so the (empty) part is durable already and this is
   * what a DURABLE would carry; the coordinator sends it no COMMIT (one that comes is answered DURABLE again).
   */
  | { kind: 'prepared'; pages: number; bytes: number; done: boolean; digest?: string; readOnly?: { part: PartRef; digest?: string } }
  /** digest: the part's as written; the round core checks it against the PREPARED one (its invariant 10). */
  | { kind: 'durable'; part: PartRef; digest?: string }
  /** A restore that found a source damaged: the epoch and why (ARCHITECTURE §3.6). */
  | { kind: 'corrupt'; store: string; epoch: bigint; reason: string }
  /** A local checkpoint (the agent's own epoch) committed. */
  | { kind: 'committed'; epoch: bigint; full: boolean; chainLength: number }
  | { kind: 'refused'; reason: string; code?: RefusalCode };

/** Why a request was refused, for shells that map it to a status (gRPC); cores need none. */
export type RefusalCode = 'not-found' | 'already-exists' | 'failed-precondition' | 'aborted' | 'invalid-argument' | 'resource-exhausted' | 'unavailable' | 'deadline-exceeded';

// ---- agent -> cluster, cluster -> grid: membership ------------------------------

/** A share's 'unit-failed' (cluster → grid): a unit failed and the job's restart policy fails the job (not a share to move). */
export type MemberJobState = 'running' | 'completed' | 'fenced' | 'failed' | 'stopped' | 'unit-failed';

export interface Heartbeat {
  member: string;
  incarnation: bigint;
  seq: number;
  /** When the member sent it, on its own clock: its lease counts from here. */
  sentAtMs: number;
  /** The states of the member's jobs (push, not poll), each with the gen of the start it reports on. */
  jobs: Array<{ jobId: string; state: MemberJobState; gen: number }>;
  /** Free room in units (a cluster reports its alive nodes' free room). */
  freeUnits: number;
}

export interface HeartbeatAnswer {
  known: boolean;
  /**
   * The answering grid's fence (grid-fence.ts), absent from a cluster's answers to its agents: a cluster takes no
   * lease renewal from a grid older than one it has seen, and a newer one raises what it has seen.
   */
  fence?: GridFence;
  /** The jobs the member may keep running until sentAtMs + lease. */
  leasedJobs: string[];
  leaseMs: number;
  /** How often the monitor wants beats (a grid's registration says so); absent: the member's own interval. */
  intervalMs?: number;
}

// ---- grid -> cluster -----------------------------------------------------------

export interface AdoptSource {
  fromCluster: string;
  epoch: bigint | null;
  units: string[];
}

export type ClusterRequest =
  | { kind: 'submitJob'; jobId: string; units: string[]; gen: number; /** The grid's lease, from the call's arrival. */ leaseMs: number; /** Absent: the default. */ restartPolicy?: RestartPolicy }
  | { kind: 'stopJob'; jobId: string }
  | { kind: 'prepare'; jobId: string; epoch: bigint; parentEpoch: bigint | null }
  | { kind: 'commit'; jobId: string; epoch: bigint }
  | { kind: 'abort'; jobId: string; epoch: bigint }
  /** Roll this cluster's share back to `epoch` (null: start anew) and adopt a lost cluster's units. */
  | { kind: 'restoreJob'; jobId: string; units: string[]; epoch: bigint | null; adopt: AdoptSource[]; gen: number; leaseMs: number; restartPolicy?: RestartPolicy };

export interface ClusterCall {
  reqId: number;
  from: string;
  /** The grid's fencing token (grid-fence.ts): its leader term and incarnation. */
  fence: GridFence;
  req: ClusterRequest;
}

export type ClusterAnswer =
  | { kind: 'ok' }
  /** done: every unit of the cluster's share had exited at the cut. */
  | { kind: 'prepared'; pages: number; bytes: number; done: boolean }
  /** The cluster's manifest for the epoch is durable. */
  | { kind: 'committed'; epoch: bigint }
  /** A restore source in another cluster's store failed verification: the grid walks back to an older line. */
  | { kind: 'corrupt'; store: string; epoch: bigint; reason: string }
  /** Try again later (a recovery of its own is running): not a failure. */
  | { kind: 'busy'; reason: string }
  /** stale: the call came from a deposed grid (its fence is older than one the cluster has seen, grid-fence.ts). */
  | { kind: 'refused'; reason: string; stale?: boolean };

/** Job control's verbs, the same at every tier (`gridckpt job cancel|delete|restore`; common.proto JobAction). */
export type JobAction = 'cancel' | 'delete' | 'restore';
