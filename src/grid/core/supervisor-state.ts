import type { Verdict } from '../../detector/monitor.js';
import { leaseMarginMs, leaseSafeAfter } from '../../detector/lease.js';
import type { GridFence } from '../../protocol/grid-fence.js';
import { GRID_KEEP_LINES } from '../../protocol/core/grid-lines.js';
import type { RoundCoordinator } from '../../protocol/core/round.js';
import type { ClusterRestore } from './recovery-plan.js';
import type { ClusterRequest, JobAction, MemberJobState } from '../../protocol/messages.js';
import type { GridEvent, GridJobRow, GridJobState, GridLine, GridStep, GridSupervisorConfig } from './supervisor-types.js';

// The grid supervisor core's state (supervisor.ts holds the intuition and
// invariants G1..G6): its clusters, its jobs and its calls in flight, with
// the few primitives every part of the core shares — a call to a cluster
// (noted as issued by this step), the catalog's rows and their save, a
// cluster's entry, a job's clusters and a cluster's units. Internal to the
// core: only GridSupervisor owns one, and nothing outside the core sees it.

/** Lines remembered per job (G6), shared with the clusters' garbage collection, which must keep at least these. */
export const KEEP_LINES = GRID_KEEP_LINES;
/** Events kept between two drains (G6); older ones are dropped and counted. */
export const MAX_EVENTS = 4_096;
/** Checkpoint requests waiting per job (G6). */
export const MAX_CHECKPOINT_WAITERS = 64;

export interface ClusterEntry {
  clusterId: string;
  incarnation: bigint;
  verdict: Verdict;
  lastGrantMs: number;
  freeUnits: number;
  registered: boolean;
  reported: Map<string, MemberJobState>;
  /** The lease it gives its agents (its registration says; 0 before it registered with this incarnation of the grid). */
  agentLeaseMs: number;
  /** Registered after a grid restart: its first beat tells which of its shares it no longer has. */
  checkForgotten: boolean;
}

export interface Recovery {
  reason: string;
  attempt: number;
  phase: 'leaseWait' | 'restoring';
  safeAtMs: number;
  waiting: Map<number, string>;
  retry: Map<string, number>;
  /** What each cluster restores, once planned (core/recovery-plan.ts). */
  restores: Map<string, ClusterRestore>;
  /** When the first attempt began (a recovery's time, lease wait included). */
  startedAtMs: number;
  /** Lines a walk-back passed over, and why (§3.6: say which). */
  passedOver: string[];
  /** What the plan moved, once planned ('' if nothing). */
  moved: string;
}

export interface GJob {
  jobId: string;
  units: string[];
  state: GridJobState;
  clusters: Map<string, string>;
  highestEpoch: bigint;
  lines: GridLine[];
  /** A line whose catalog write is in flight: every row written meanwhile holds it (one write replaces another). */
  pendingLine: GridLine | null;
  lost: Set<string>;
  round: RoundCoordinator;
  recovery: Recovery | null;
  nextRoundAtMs: number;
  final: { attempts: number; reasons: string[] } | null;
  lastError: string;
  submit: { reqId: number; waiting: Set<number> } | null;
  /** A final round committed while a share was not done at its cut (its report predated a restart of its own). */
  finalMissed: boolean;
  /** Bumped by every submit or restore: a share's report counts only if it names the current one. */
  gen: number;
  /** Clusters whose PREPARED of the running round said their share had ended. */
  doneAtCut: Set<string>;
  /** Recoveries that ended well. */
  recoveries: number;
  /** Its round period. */
  intervalMs: number;
  /** Clusters lost for this job only (their share failed) → when this job stopped being leased to them. */
  shareLostAtMs: Map<string, number>;
  /** Checkpoint requests waiting for the next round, and those the running round answers. */
  checkpointNext: number[];
  checkpointRound: number[];
  /** An operator's cancel (or delete) under way: the stops sent (reqId -> cluster), who waits, the clusters that did not confirm. */
  cancel: { waiters: Array<{ reqId: number; action: JobAction }>; waiting: Map<number, string>; confirmed: string[]; unconfirmed: string[] } | null;
  /** Operator restores answered when the job's recovery ends. */
  restoreAsks: number[];
}

export type Pending = { jobId: string; cluster: string; kind: ClusterRequest['kind']; epoch: bigint | null; what: 'round' | 'restore' | 'submit' | 'stop'; sentAtMs: number };

export class GridState {
  readonly clusters = new Map<string, ClusterEntry>();
  readonly jobs = new Map<string, GJob>();
  readonly pending = new Map<number, Pending>();
  /** Deleted jobs' highest epochs (in the catalog): a job under the id numbers above it (G3). */
  readonly forgotten = new Map<string, bigint>();
  /** Deleted jobs a cluster may still run a share of (it did not confirm the stop): until when (G1). Not in the catalog: see holdOf. */
  readonly forgottenHolds = new Map<string, number>();
  nextReq = 1;
  stepNo = 0;
  /** Calls issued by the current step (GridSupervisor.step keeps them while its persist is in flight). */
  issued: number[] = [];
  readonly events: GridEvent[] = [];
  eventsDropped = 0;
  failuresDetected = 0;

  constructor(readonly config: GridSupervisorConfig, public nowMs: number, readonly startedAtMs: number, private readonly agentLeases: ReadonlyMap<string, number> = new Map()) {}

  /** What every call and heartbeat answer of this grid carries (protocol/grid-fence.ts). */
  fence(): GridFence {
    return { term: this.config.leaderTerm ?? 0n, incarnation: this.config.incarnation };
  }

  mutant(name: string): boolean {
    return this.config.mutants?.has(name) ?? false;
  }

  rows(): GridJobRow[] {
    return [...this.jobs.values()].map((j) => ({
      jobId: j.jobId, units: j.units, state: j.state, clusters: Object.fromEntries(j.clusters), highestEpoch: String(j.highestEpoch),
      lines: j.pendingLine ? [...j.lines, j.pendingLine].slice(-KEEP_LINES) : j.lines, lost: [...j.lost], lastError: j.lastError, recoveries: j.recoveries,
      ...(j.intervalMs !== this.config.checkpointIntervalMs ? { intervalMs: j.intervalMs } : {}),
      ...(j.gen !== 0 ? { gen: j.gen } : {}),
    }));
  }

  emit(e: GridEvent): void {
    if (this.events.length >= MAX_EVENTS) {
      this.events.shift();
      this.eventsDropped += 1;
    }
    this.events.push(e);
  }

  /** A job's state changes (an event says so). */
  become(job: GJob, to: GridJobState, reason: string): void {
    if (job.state === to) return;
    this.emit({ kind: 'jobState', jobId: job.jobId, from: job.state, to, reason });
    job.state = to;
  }

  /** Asks for the catalog to be written by this step: step() makes every ask one write of the rows as it ends. */
  save(out: GridStep): void {
    out.persist.push({ kind: 'catalog', jobs: [], reason: 'state', step: this.stepNo });
  }

  entry(id: string): ClusterEntry {
    let c = this.clusters.get(id);
    if (!c) {
      // Unknown to this incarnation: the previous one granted nothing after its death, before our start, save
      // submits and restores still in flight then (their deadline), as the cluster core's resumeGrantFloor.
      const floor = this.config.resumed ?? this.config.incarnation > 1n ? this.startedAtMs + this.config.callTimeoutMs : this.startedAtMs;
      c = { clusterId: id, incarnation: 0n, verdict: 'alive', lastGrantMs: floor, freeUnits: 0, registered: false, reported: new Map(), agentLeaseMs: this.agentLeases.get(id) ?? 0, checkForgotten: false };
      this.clusters.set(id, c);
    }
    return c;
  }

  call(out: GridStep, to: string, req: ClusterRequest, jobId: string, what: Pending['what'], epoch: bigint | null): number {
    const reqId = this.nextReq++;
    this.issued.push(reqId);
    this.pending.set(reqId, { jobId, cluster: to, kind: req.kind, epoch, what, sentAtMs: this.nowMs });
    out.send.push({ to, call: { reqId, from: this.config.gridId, fence: this.fence(), req } });
    return reqId;
  }

  /**
   * The latest a submit or restore to the cluster still unanswered may lease it the job (0: none in flight):
   * the cluster leases itself the job when the call arrives, at most the call's send plus its timeout; the
   * answer turns the bound into a grant at its arrival.
   */
  pendingBound(id: string): number {
    let bound = 0;
    for (const p of this.pending.values()) {
      if (p.cluster === id && (p.what === 'submit' || p.what === 'restore')) bound = Math.max(bound, p.sentAtMs + this.config.callTimeoutMs);
    }
    return bound;
  }

  /**
   * Until when a job under a deleted job's id must wait (G1): a cluster that did not confirm its share stopped
   * may run it until its leases lapse; after a restart of the grid, any may, until the leases the previous
   * incarnation could have granted lapsed.
   */
  holdOf(jobId: string): number {
    if (!this.forgotten.has(jobId)) return 0;
    const held = this.forgottenHolds.get(jobId) ?? 0;
    if (this.config.incarnation <= 1n) return held;
    const agentLeaseMs = Math.max(this.config.agentLeaseMs, ...[...this.clusters.values()].map((c) => c.agentLeaseMs), ...this.agentLeases.values());
    const margin = leaseMarginMs(this.config.clusterLeaseMs + agentLeaseMs);
    return Math.max(held, leaseSafeAfter(this.startedAtMs + this.config.callTimeoutMs, this.config.clusterLeaseMs, agentLeaseMs, margin));
  }

  clustersOf(job: GJob): string[] {
    return [...new Set(job.clusters.values())].sort();
  }

  unitsIn(job: GJob, cluster: string): string[] {
    return job.units.filter((u) => job.clusters.get(u) === cluster);
  }
}
