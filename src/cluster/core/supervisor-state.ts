import { invalidArgument } from '../../common/errors.js';
import { NO_GRID_FENCE, type GridFence } from '../../protocol/grid-fence.js';
import { Monitor, type Verdict } from '../../detector/monitor.js';
import { RoundCoordinator } from '../../protocol/core/round.js';
import type { AgentRequest, ClusterAnswer, MemberJobState, RestoreSource } from '../../protocol/messages.js';
import type { NodeCapacity } from './placement.js';
import { DEFAULT_RESTART_POLICY, type RestartPolicy } from '../../protocol/job-spec.js';
import type { ClusterEvent, ClusterJobState, ClusterStep, ClusterSupervisorConfig, LocalAnswer } from './supervisor-types.js';

// The cluster supervisor core's state (supervisor.ts holds the intuition and
// invariants C1..C10): its nodes, its jobs and its calls in flight, with the
// few primitives every part of the core shares — a call to an agent, an
// answer to whoever asked, a job's state change (an event), a job's nodes
// and the nodes' free room. Internal to the core: only ClusterSupervisor
// owns one, and nothing outside the core sees it.

/** Events kept for the shell between two drains (C7); past it the oldest half is dropped. */
export const MAX_EVENTS = 4096;
/** Start gens are incarnation × 2^32 + a count (C8): the incarnation must keep them safe integers. */
export const MAX_INCARNATION = 2n ** 21n - 1n;

export interface NodeEntry {
  nodeId: string;
  incarnation: bigint;
  capacityUnits: number;
  verdict: Verdict;
  lastGrantMs: number;
  /**
   * Starts in flight to the node (reqId -> send + call timeout): until one is
   * answered, the agent may bind its lease as late as that (C1). Its answer
   * proves the lease was bound by then, and the bound becomes a grant.
   */
  startBounds: Map<number, number>;
  /** When this incarnation (or a fresh watch of it after a failed verdict) registered. */
  registeredAtMs: number;
  /** Job states the node last reported (push, on its heartbeat). */
  reported: Map<string, MemberJobState>;
}

/** Who waits for a restart's end: a grid call or a local client's request. */
export interface Asker {
  to: 'grid' | 'local';
  reqId: number;
  /** An operator's restore: answered with the epoch the units run from. */
  restore?: boolean;
}

export interface Restart {
  reason: string;
  attempt: number;
  phase: 'stopping' | 'leaseWait' | 'restoring';
  epoch: bigint | null;
  /** Nodes whose units move; they must be dead before the restore (C1). */
  lost: Set<string>;
  /** When each was lost: one that registers again after it is back (restored in place). */
  lostAtMs: Map<string, number>;
  waiting: Set<number>;
  safeAtMs: number;
  /** Answered when the restart ends. */
  answer: Asker | null;
  adopt: RestoreSource[];
  /** Epochs this restart passed over (damaged), newest first, and why: its end names them. */
  skipped: Array<{ epoch: bigint; reason: string }>;
}

/** A job the cluster runs on its own (no grid): its periodic rounds. */
export interface LocalSpec {
  intervalMs: number;
  fullEvery: number;
}

/** A job taken back from the job table after a restart of this coordinator, waiting for its nodes. */
export interface Resume {
  /** Per node of the job, what its first heartbeat said: 'ok' (runs the row's start) or why it must restart. */
  seen: Map<string, string>;
}

export interface Job {
  jobId: string;
  /**
   * A local job's epochs reserved in the job table: none above it was used.
   * Reserved EPOCH_RESERVE at a time, so that a row write (an fsync the
   * driver waits for) comes once in that many rounds, not before each.
   */
  epochCeiling: bigint;
  units: string[];
  state: ClusterJobState;
  placement: Map<string, string>;
  committed: bigint[];
  badEpochs: Set<bigint>;
  round: RoundCoordinator;
  restart: Restart | null;
  gridLeaseUntilMs: number;
  /** Grid calls waiting on the round: prepare answers prepared, commit answers committed. */
  gridPrepare: number | null;
  gridCommit: number | null;
  lastError: string;
  allDoneAtMs: number | null;
  /** A grid share shown completed (status, Watch): running, every unit completed, the grid's final round to come (showShares). */
  shareShownCompleted: boolean;
  /** The gen of the last start sent to each node (its reports must carry it) and of the grid's last submit or restore. */
  startGens: Map<string, number>;
  gridGen: number;
  /** Nodes whose PREPARED of the running round said every unit had exited. */
  doneAtCut: Set<string>;
  /** After any restart the next epoch is full: moved or adopted units' pages are in no epoch of this store's chain. */
  needsFull: boolean;
  /**
   * Units the grid's last restore adopted from other clusters' stores: until a full epoch here holds them, a
   * restart of the job (a node lost) reads them from there, as that restore did.
   */
  adopted: RestoreSource[];
  /** null: grid-managed. */
  local: LocalSpec | null;
  /** Local: when the next periodic round is due (null: none). */
  nextRoundAtMs: number | null;
  roundsSinceFull: number;
  /** Local: the checkpoint requests answered by the running round's outcome (the one that started it, and those that joined it). */
  checkpointReqs: number[];
  /** Local: the final round, once every unit completed (C5): attempts failed, the next one's time, the epoch in flight. */
  final: { failures: number; reasons: string[]; atMs: number; epoch: bigint | null } | null;
  /** The newest epoch committed with every node done at its cut (C5). */
  doneEpoch: bigint | null;
  recoveries: number;
  /** When the recovery under way began (null: none). */
  recoveringSinceMs: number | null;
  resume: Resume | null;
  /** The row last handed to the driver (see supervisor-resume.ts), null when it must be saved again. */
  savedRow: string | null;
  /**
   * A field the row holds (rowOf) may have changed since savedRow: set
   * wherever one does, so that saveRows builds only these rows (C9; a
   * missed one is caught by checkInvariants, which rebuilds the others).
   */
  rowDirty: boolean;
  /** A row write failed: the next try waits until then. */
  rowRetryAtMs: number | null;
  /** What a unit failure leads to (restore from the last epoch, or fail), and how often (supervisor-nodes.ts). */
  restartPolicy: RestartPolicy;
  /** Restores made after unit failures so far (bounded by restartPolicy.maxRestarts). */
  unitRestarts: number;
  /** Failed by its restart policy after a unit failure: a grid share reports 'unit-failed' (the grid fails the job, moves nothing). */
  failedByPolicy: boolean;
  /** An operator's cancel (or delete) under way: the stops sent (reqId -> node), who waits, the nodes that did not confirm. */
  cancel: { waiters: Array<{ reqId: number; action: 'cancel' | 'delete' | 'restore' }>; waiting: Map<number, string>; confirmed: string[]; unconfirmed: string[] } | null;
}

export type Pending = { jobId: string; node: string; what: 'round' | 'restart' | 'stop'; epoch: bigint | null; kind: AgentRequest['kind'] };

export class ClusterState {
  readonly nodes = new Map<string, NodeEntry>();
  readonly jobs = new Map<string, Job>();
  readonly pending = new Map<number, Pending>();
  readonly monitor: Monitor;
  /** Highest epoch of each grid-managed job in the job table (not resumed: the grid recovers them), for C3. */
  readonly knownEpochs = new Map<string, bigint>();
  /** Where the previous incarnation ran each grid-managed job (its table row): the grid's restore starts there (C1). */
  readonly knownPlacement = new Map<string, Map<string, string>>();
  events: ClusterEvent[] = [];
  eventsDropped = 0;
  nextReq = 1;
  nowMs = 0;
  /** The first step's time (null before it): a resume counts from it. */
  startedAtMs: number | null = null;
  failuresDetected = 0;
  /** Calls issued by the current step (kept while its persists are in flight). */
  issued: number[] = [];
  /** fence: the newest grid fence seen (protocol/grid-fence.ts, F1); staleCalls: grid calls refused for an older one. */
  readonly grid = { fence: NO_GRID_FENCE as GridFence, leaseMs: 0, nextBeatMs: 0, beatSeq: 0, intervalMs: 0, staleCalls: 0 };

  constructor(readonly config: ClusterSupervisorConfig) {
    if (config.incarnation < 0n || config.incarnation > MAX_INCARNATION) throw invalidArgument(`cluster incarnation ${config.incarnation} is out of range 0..${MAX_INCARNATION}`);
    if (!Number.isSafeInteger(config.resumeWaitMs) || config.resumeWaitMs <= 0) throw invalidArgument(`resumeWaitMs must be a positive integer, got ${config.resumeWaitMs}`);
    this.monitor = new Monitor(config.detector);
    this.grid.leaseMs = config.gridLeaseMs;
  }

  mutant(name: string): boolean {
    return this.config.mutants?.has(name) ?? false;
  }

  /** The gen of the next call (C8): above every gen of an earlier incarnation. */
  nextGen(): number {
    return Number(this.config.incarnation) * 2 ** 32 + this.nextReq;
  }

  callAgent(out: ClusterStep, node: string, req: AgentRequest, jobId: string, what: Pending['what'], epoch: bigint | null): number {
    const reqId = this.nextReq++;
    this.pending.set(reqId, { jobId, node, what, epoch, kind: req.kind });
    this.issued.push(reqId);
    out.send.push({ to: node, call: { reqId, from: this.config.clusterId, incarnation: this.config.incarnation, req } });
    return reqId;
  }

  answerGrid(out: ClusterStep, reqId: number, answer: ClusterAnswer): void {
    out.reply.push({ to: 'grid', kind: 'answer', reqId, answer });
  }

  answerLocal(out: ClusterStep, reqId: number, answer: LocalAnswer): void {
    out.reply.push({ to: 'local', kind: 'answer', reqId, answer });
  }

  /** Ends a restart's wait: the grid gets its own answer; a local client ok, or a refusal. */
  answer(out: ClusterStep, who: Asker, answer: ClusterAnswer): void {
    if (who.to === 'grid') return this.answerGrid(out, who.reqId, answer);
    if (answer.kind === 'ok') return this.answerLocal(out, who.reqId, { kind: 'ok' });
    const reason = 'reason' in answer ? answer.reason : answer.kind;
    this.answerLocal(out, who.reqId, { kind: 'refused', reason, code: answer.kind === 'corrupt' ? 'failed-precondition' : 'unavailable' });
  }

  emit(e: ClusterEvent): void {
    if (this.events.length >= MAX_EVENTS) {
      const drop = MAX_EVENTS / 2;
      this.events.splice(0, drop);
      this.eventsDropped += drop;
    }
    this.events.push(e);
  }

  /** Every change of a job's state goes through here (one event each). */
  become(job: Job, to: ClusterJobState, reason: string): void {
    if (job.state === to) return;
    this.emit({ kind: 'jobState', jobId: job.jobId, from: job.state, to, reason });
    job.state = to;
    job.rowDirty = true;
  }

  /** A new record of the job (replacing an ended one): its epochs go on above every one the old record or the job table knew (C3). */
  newJob(jobId: string, units: string[], local: LocalSpec | null, reason: string, from: { state?: ClusterJobState; highestEpoch?: bigint; restartPolicy?: RestartPolicy; unitRestarts?: number } = {}): Job {
    let highest = from.highestEpoch ?? 0n;
    for (const e of [this.jobs.get(jobId)?.round.status().highestEpoch ?? 0n, this.knownEpochs.get(jobId) ?? 0n]) if (e > highest) highest = e;
    const state = from.state ?? 'starting';
    const job: Job = {
      jobId, epochCeiling: highest, units, state, placement: new Map(), committed: [], badEpochs: new Set(),
      round: new RoundCoordinator(jobId, this.config.round, highest, this.config.mutants),
      restart: null, gridLeaseUntilMs: this.nowMs, gridPrepare: null, gridCommit: null, lastError: '', allDoneAtMs: null, shareShownCompleted: false, needsFull: true, adopted: [],
      startGens: new Map(), gridGen: 0, doneAtCut: new Set(), local, nextRoundAtMs: null, roundsSinceFull: 0, checkpointReqs: [], final: null,
      doneEpoch: null, recoveries: 0, recoveringSinceMs: null, resume: null, savedRow: null, rowDirty: true, rowRetryAtMs: null,
      restartPolicy: from.restartPolicy ?? DEFAULT_RESTART_POLICY, unitRestarts: from.unitRestarts ?? 0, cancel: null, failedByPolicy: false,
    };
    // A job the previous incarnation ran (grid-managed), or an ended or deleted record under the id: its units go back where they
    // ran, or wait out their leases (C1) — a node that missed the old record's stop may still run them.
    const old = this.jobs.get(jobId);
    const known = this.knownPlacement.get(jobId) ?? old?.placement;
    if (known) job.placement = new Map([...known].filter(([u]) => units.includes(u)));
    this.knownPlacement.delete(jobId);
    this.jobs.set(jobId, job);
    this.emit({ kind: 'jobState', jobId, from: null, to: state, reason });
    if (job.placement.size > 0) this.emit({ kind: 'jobPlaced', jobId, placement: Object.fromEntries([...job.placement].sort()) });
    return job;
  }

  /**
   * The highest epoch of a job this core no longer holds (a deleted job): a job under its id numbers above it (C3);
   * and where its units ran: one under its id starts there, or waits out their leases (C1). Bounded (C7): past
   * 4 × maxJobs the oldest entry goes.
   */
  rememberEpochs(jobId: string, highest: bigint, placement?: ReadonlyMap<string, string>): void {
    if (placement && placement.size > 0) {
      this.knownPlacement.delete(jobId);
      this.knownPlacement.set(jobId, new Map(placement));
      for (const id of this.knownPlacement.keys()) {
        if (this.knownPlacement.size <= 4 * this.config.maxJobs) break;
        this.knownPlacement.delete(id);
      }
    }
    const known = this.knownEpochs.get(jobId) ?? 0n;
    this.knownEpochs.delete(jobId);
    this.knownEpochs.set(jobId, known > highest ? known : highest);
    for (const id of this.knownEpochs.keys()) {
      if (this.knownEpochs.size <= 4 * this.config.maxJobs) break;
      this.knownEpochs.delete(id);
    }
  }

  /** Best effort: a node that misses it is its lease's business. */
  stopEverywhere(job: Job, out: ClusterStep): void {
    for (const n of this.nodesOf(job)) this.callAgent(out, n, { kind: 'stopJob', jobId: job.jobId, gen: this.nextGen() }, job.jobId, 'stop', null);
  }

  nodesOf(job: Job): string[] {
    return [...new Set(job.placement.values())].sort();
  }

  /** The last instant a node may hold a lease of this cluster; for a node not registered since a restart, a bound of the old incarnation's. */
  grantOf(nodeId: string): number {
    const n = this.nodes.get(nodeId);
    return n ? Math.max(n.lastGrantMs, ...n.startBounds.values()) : this.resumeGrantFloor();
  }

  /**
   * The last instant a previous incarnation of this coordinator may have granted a lease: it granted
   * nothing after its death, before our first step, save starts still in flight then (their deadline).
   */
  resumeGrantFloor(): number {
    return this.config.incarnation > 1n ? (this.startedAtMs ?? this.nowMs) + this.config.callTimeoutMs : 0;
  }

  /** Free room of each registered node, not counting this job's own units. */
  capacities(except: Job | null): NodeCapacity[] {
    const placed = new Map<string, number>();
    for (const j of this.jobs.values()) {
      if (j === except || !isLive(j)) continue;
      for (const n of j.placement.values()) placed.set(n, (placed.get(n) ?? 0) + 1);
    }
    return [...this.nodes.values()].map((n) => ({ nodeId: n.nodeId, capacityUnits: n.capacityUnits, placedUnits: placed.get(n.nodeId) ?? 0 }));
  }

  /** A recovery (not a first start) begins: one, until it ends (counted when it ends well). */
  recoveryStarted(job: Job, nodeId: string | null, reason: string): void {
    if (job.recoveringSinceMs !== null) return;
    job.recoveringSinceMs = this.nowMs;
    this.emit({ kind: 'recoveryStarted', jobId: job.jobId, nodeId, reason });
  }

  /** counted: false for a resume that found every unit still running (nothing was recovered). */
  recoveryEnded(job: Job, ok: boolean, counted = true): void {
    if (job.recoveringSinceMs === null) return;
    if (ok && counted) {
      job.recoveries += 1;
      job.rowDirty = true;
    }
    this.emit({ kind: 'recovered', jobId: job.jobId, ms: this.nowMs - job.recoveringSinceMs, ok });
    job.recoveringSinceMs = null;
  }
}

export function isLive(j: Job): boolean {
  return j.state === 'running' || j.state === 'recovering' || j.state === 'starting';
}
