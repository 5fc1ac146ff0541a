import { GridSupervisor } from '../../../src/grid/core/supervisor.js';
import type { GridInput, GridJobRow, GridPersist, GridStep, GridSupervisorConfig } from '../../../src/grid/core/supervisor-types.js';
import { scaleDetectorConfig } from '../../../src/detector/config.js';
import { DEFAULT_ROUND_CONFIG } from '../../../src/protocol/core/round.js';
import type { ClusterAnswer, ClusterCall, ClusterRequest, Heartbeat, HeartbeatAnswer, MemberJobState } from '../../../src/protocol/messages.js';

// Drives a GridSupervisor the way src/sim/members.ts wires it, with the
// simulator's config values (src/sim/run.ts), the test playing every
// cluster and the catalog disk by hand. checkInvariants() runs after every step.

export const SIM_ROUND = { ...DEFAULT_ROUND_CONFIG, prepareTimeoutMs: 300, holdTimeoutMs: 600, commitTimeoutMs: 400, manifestTimeoutMs: 300, abortTimeoutMs: 100 };

export const GRID_CONFIG: GridSupervisorConfig = {
  gridId: 'grid', incarnation: 1n, detector: scaleDetectorConfig(50), round: SIM_ROUND, checkpointIntervalMs: 150, callTimeoutMs: 200,
  clusterLeaseMs: 1000, agentLeaseMs: 500, maxRecoveryAttempts: 20, maxFinalAttempts: 20, retryMs: 100, maxJobs: 16,
};

export const JOB = 'bank';
export const CLUSTERS = ['c1', 'c2', 'c3'];
export const UNITS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5'];
/** Unit i goes to the i-th alive cluster, round robin (sorted units, sorted clusters). */
export const SHARES: Record<string, string[]> = { c1: ['u0', 'u3'], c2: ['u1', 'u4'], c3: ['u2', 'u5'] };

export interface Logged { t: number; input: GridInput; out: GridStep }
export interface SentCall { to: string; reqId: number; req: ClusterRequest; t?: number }

export class GridHarness {
  readonly core: GridSupervisor;
  readonly log: Logged[] = [];
  nowMs: number;
  private readonly seq = new Map<string, number>();
  /** Each cluster's incarnation as it last registered (its beats carry it). */
  readonly incarnations = new Map<string, bigint>();
  private nextReq = 1_000;
  private readonly nextBeatAt = new Map<string, number>();
  /** What each cluster reports of its shares on its heartbeats. */
  readonly reports = new Map<string, Array<{ jobId: string; state: MemberJobState; gen: number }>>();
  readonly free = new Map<string, number>();
  /** The catalog on disk: what the last persist that completed wrote. */
  disk: GridJobRow[] = [];
  /**
   * When set, plays the driver and the alive clusters: after each step its
   * catalog writes complete (persisted inputs fed), then every call to an
   * alive cluster is answered at once by `answer` (null: no answer).
   */
  autopilot: { alive: Set<string>; answer: (call: SentCall) => ClusterAnswer | null } | null = null;

  constructor(config: Partial<GridSupervisorConfig> = {}, catalog: GridJobRow[] = [], nowMs = 0, agentLeases: ReadonlyMap<string, number> = new Map(), forgotten: ReadonlyMap<string, bigint> = new Map()) {
    this.core = new GridSupervisor({ ...GRID_CONFIG, ...config }, catalog, nowMs, agentLeases, forgotten);
    this.nowMs = nowMs;
  }

  step(input: GridInput, t = this.nowMs): GridStep {
    this.nowMs = t;
    const out = this.core.step(input, t);
    this.core.checkInvariants();
    this.log.push({ t, input, out });
    if (this.autopilot) {
      const pilot = this.autopilot;
      this.persistAll(out, t);
      for (const c of calls(out)) {
        if (!pilot.alive.has(c.to)) continue;
        const a = pilot.answer(c);
        if (a !== null) this.answer(c, a, t);
      }
    }
    return out;
  }

  /** The clusters answer as healthy ones do: prepared (done as `done` says), committed, ok. */
  fly(alive: string[], done: (cluster: string) => boolean = () => false): void {
    this.autopilot = {
      alive: new Set(alive),
      answer: (c) => {
        switch (c.req.kind) {
          case 'prepare': return { kind: 'prepared', pages: 1, bytes: 4096, done: done(c.to) };
          case 'commit': return { kind: 'committed', epoch: c.req.epoch };
          default: return { kind: 'ok' };
        }
      },
    };
  }

  /** The driver's part: the step's catalog writes complete, then the persisted inputs of lines are fed. */
  persistAll(out: GridStep, t = this.nowMs): GridStep[] {
    const fed: GridStep[] = [];
    for (const p of out.persist) {
      this.disk = structuredClone(p.jobs);
      if (p.lineOf) fed.push(this.step({ kind: 'persisted', what: p }, t));
    }
    return fed;
  }

  heartbeat(cluster: string, over: Partial<Heartbeat> = {}, t = this.nowMs): GridStep {
    const seq = (this.seq.get(cluster) ?? 0) + 1;
    this.seq.set(cluster, seq);
    return this.step({ kind: 'clusterHeartbeat', hb: { member: cluster, incarnation: this.incarnations.get(cluster) ?? 1n, seq, sentAtMs: t, jobs: this.reports.get(cluster) ?? [], freeUnits: this.free.get(cluster) ?? 6, ...over } }, t);
  }

  answer(call: SentCall, answer: ClusterAnswer, t = this.nowMs): GridStep {
    return this.step({ kind: 'clusterAnswer', cluster: call.to, reqId: call.reqId, answer }, t);
  }

  /** RegisterCluster: the cluster's beats carry this incarnation from now on. */
  registerCluster(cluster: string, incarnation = 1n, t = this.nowMs, agentLeaseMs = 0): GridStep {
    this.incarnations.set(cluster, incarnation);
    return this.step({ kind: 'clusterRegistered', reqId: this.nextReq++, clusterId: cluster, incarnation, agentLeaseMs }, t);
  }

  register(clusters = CLUSTERS, t = this.nowMs): void {
    for (const c of clusters) {
      this.registerCluster(c, this.incarnations.get(c) ?? 1n, t);
      this.heartbeat(c, {}, t);
      this.nextBeatAt.set(c, t + 50);
    }
  }

  /** Moves time to toMs: the alive clusters heartbeat every 50 ms, the core is ticked at its deadlines. */
  advance(toMs: number, alive: string[], until?: (l: Logged) => boolean): Logged[] {
    const from = this.log.length;
    let spins = 0;
    for (;;) {
      const beats = alive.map((c) => this.nextBeatAt.get(c) ?? this.nowMs);
      const nextBeat = beats.length > 0 ? Math.min(...beats) : Infinity;
      const deadline = this.core.nextDeadline();
      const d = deadline === null ? Infinity : Math.ceil(deadline);
      const t = Math.max(this.nowMs, Math.min(nextBeat, d));
      if (t > toMs) break;
      const before = this.log.length;
      if (t > this.nowMs) spins = 0;
      if (nextBeat <= d) {
        const c = alive[beats.indexOf(nextBeat)]!;
        this.nextBeatAt.set(c, nextBeat + 50);
        this.heartbeat(c, {}, t);
      } else {
        // A tick must move the core's deadline past t (else the driver's timer would fire again at once, forever).
        if (t === this.nowMs && ++spins > 100) throw new Error(`the core's deadline stays at ${deadline} at ${t}: the driver would spin`);
        this.step({ kind: 'tick' }, t);
      }
      // (With the autopilot a step is followed by the steps of its answers: all are looked at.)
      if (until && this.log.slice(before).some(until)) return this.log.slice(from);
    }
    this.nowMs = toMs;
    return this.log.slice(from);
  }

  lastBeatOf(cluster: string): number {
    return [...this.log].reverse().find((l) => l.input.kind === 'clusterHeartbeat' && l.input.hb.member === cluster)?.t ?? -1;
  }
}

export function calls(out: GridStep): SentCall[] {
  return out.send.map((s) => ({ to: s.to, reqId: s.call.reqId, req: s.call.req }));
}

export function callsOf(steps: Logged[]): SentCall[] {
  return steps.flatMap((l) => calls(l.out).map((c) => ({ ...c, t: l.t })));
}

/** The answer to the one cluster heartbeat a step replied to. */
export function beatAnswer(out: GridStep): HeartbeatAnswer {
  const beats = out.reply.flatMap((r) => (r.kind === 'beat' ? [r.answer] : []));
  if (beats.length !== 1) throw new Error(`expected one heartbeat answer, got ${beats.length}`);
  return beats[0]!;
}

export function gridCall(reqId: number, req: ClusterRequest): ClusterCall {
  return { reqId, from: 'grid', fence: { term: 0n, incarnation: 1n }, req };
}

/** Registers the clusters at 0 and submits the job at 10, every cluster answering ok at 20. */
export function submitted(h: GridHarness): void {
  h.step({ kind: 'tick' }, 0);
  h.register(CLUSTERS, 0);
  const out = h.step({ kind: 'submit', reqId: 1, jobId: JOB, units: UNITS }, 10);
  h.persistAll(out);
  for (const c of calls(out)) h.answer(c, { kind: 'ok' }, 20);
  h.nowMs = 20;
}

/** The round started by the next deadline or heartbeat (the step that sends its PREPARE). */
export function nextRound(h: GridHarness, alive = CLUSTERS): Logged {
  const steps = h.advance(h.nowMs + 5000, alive, (l) => calls(l.out).some((c) => c.req.kind === 'prepare'));
  return steps.at(-1)!;
}

/** Answers a round's PREPARE (done as given) and COMMIT from every cluster, and writes its line. */
export function commitRound(h: GridHarness, prepareStep: GridStep, done: Record<string, boolean> = {}): GridStep {
  h.persistAll(prepareStep);
  let last: GridStep | null = null;
  for (const c of calls(prepareStep)) last = h.answer(c, { kind: 'prepared', pages: 2, bytes: 8192, done: done[c.to] ?? false });
  const commits = calls(last!);
  for (const c of commits) last = h.answer(c, { kind: 'committed', epoch: (c.req as { epoch: bigint }).epoch });
  const [written] = h.persistAll(last!);
  return written!;
}

export type { GridPersist };
