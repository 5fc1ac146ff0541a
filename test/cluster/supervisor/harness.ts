import { expect } from 'vitest';
import { ClusterSupervisor, type ClusterResume } from '../../../src/cluster/core/supervisor.js';
import type { ClusterEvent, ClusterInput, ClusterPersist, ClusterStep, ClusterSupervisorConfig, JobRow, LocalAnswer, LocalRequest } from '../../../src/cluster/core/supervisor-types.js';
import { scaleDetectorConfig } from '../../../src/detector/config.js';
import { DEFAULT_ROUND_CONFIG } from '../../../src/protocol/core/round.js';
import type { AgentAnswer, AgentCall, AgentRequest, ClusterRequest, Heartbeat, HeartbeatAnswer, MemberJobState } from '../../../src/protocol/messages.js';

// Drives a ClusterSupervisor the way src/sim/members.ts wires it, with the
// simulator's config values (src/sim/run.ts: SIM, the detector from
// scaleDetectorConfig, the round deadlines), but with the test playing every
// agent, the grid and the local client by hand. checkInvariants() runs after
// every step. The job table's rows a step hands the driver are taken out of
// the step the harness returns (tests of the rounds compare exact manifests)
// and kept in `rows`; the events in `events`.

export const SIM_ROUND = { ...DEFAULT_ROUND_CONFIG, prepareTimeoutMs: 300, holdTimeoutMs: 600, commitTimeoutMs: 400, manifestTimeoutMs: 300, abortTimeoutMs: 100 };

export const CLUSTER_CONFIG: ClusterSupervisorConfig = {
  clusterId: 'c1', incarnation: 1n, heartbeatIntervalMs: 50, detector: scaleDetectorConfig(50), round: SIM_ROUND,
  agentLeaseMs: 500, gridLeaseMs: 1000, callTimeoutMs: 200, maxRecoveryAttempts: 20, maxFinalAttempts: 20, keepEpochs: 16, maxJobs: 16, resumeWaitMs: 1500,
};

/** The gen of the start (or stop) sent as call reqId by incarnation 1 (C8). */
export const G = (reqId: number, incarnation = 1): number => incarnation * 2 ** 32 + reqId;

export const JOB = 'bank';
export const NODES = ['c1n1', 'c1n2', 'c1n3'];
export const UNITS = ['u0', 'u1', 'u2', 'u3'];
/** The placement placeUnits gives 4 units over 3 empty nodes of 4 units each (least loaded first, ties by id). */
export const PLACED: Record<string, string[]> = { c1n1: ['u0', 'u3'], c1n2: ['u1'], c1n3: ['u2'] };

export interface Logged { t: number; input: ClusterInput; out: ClusterStep }

export interface SentCall { to: string; reqId: number; req: AgentRequest }

export class ClusterHarness {
  readonly core: ClusterSupervisor;
  readonly log: Logged[] = [];
  /** Job table rows handed to the driver, in order. */
  readonly rows: Array<{ t: number; step: number; row: JobRow; persist: ClusterPersist }> = [];
  readonly events: ClusterEvent[] = [];
  /** Deleted jobs' removals from the job table handed to the driver (job control). */
  readonly forgotten: Array<{ t: number; jobId: string; highestEpoch: bigint }> = [];
  nowMs = 0;
  localReqId = 500;
  private readonly seq = new Map<string, number>();
  private readonly nextBeatAt = new Map<string, number>();
  /** Each node's incarnation as last registered (its heartbeats carry it). */
  private readonly incarnations = new Map<string, bigint>();
  /** The job states each node reports on its heartbeats (with the gen of its last start). */
  readonly reports = new Map<string, Array<{ jobId: string; state: MemberJobState; gen: number }>>();
  gridReqId = 1000;
  /** Whether grid heartbeats are answered (renewing the grid lease on every job). */
  gridAnswers = true;

  constructor(config: Partial<ClusterSupervisorConfig> = {}, resume?: ClusterResume) {
    this.core = new ClusterSupervisor({ ...CLUSTER_CONFIG, ...config }, resume);
  }

  step(input: ClusterInput, t = this.nowMs): ClusterStep {
    this.nowMs = t;
    const raw = this.core.step(input, t);
    this.core.checkInvariants();
    this.events.push(...this.core.drainEvents());
    for (const p of raw.persist) if (p.kind === 'jobRow') this.rows.push({ t, step: this.log.length, row: p.row, persist: p });
    for (const p of raw.persist) if (p.kind === 'jobForgotten') this.forgotten.push({ t, jobId: p.jobId, highestEpoch: p.highestEpoch });
    const out = { ...raw, persist: raw.persist.filter((p) => p.kind === 'manifest') };
    this.log.push({ t, input, out });
    // The grid answers its heartbeats at once, naming every job (the lease of grid-managed jobs).
    for (const s of out.send) {
      if (s.to === 'grid' && 'heartbeat' in s && this.gridAnswers) {
        this.step({ kind: 'gridHeartbeatAnswer', sentAtMs: s.heartbeat.sentAtMs, answer: { known: true, leasedJobs: s.heartbeat.jobs.map((j) => j.jobId), leaseMs: 1000 } }, t);
      }
    }
    return out;
  }

  /** An agent's RegisterNode. */
  registerNode(node: string, incarnation = 1n, capacityUnits = 4, t = this.nowMs): ClusterStep {
    this.incarnations.set(node, incarnation);
    return this.step({ kind: 'nodeRegistered', reqId: 900 + (this.seq.get(node) ?? 0), nodeId: node, incarnation, capacityUnits }, t);
  }

  /** A local client's request; returns its reqId and the step. */
  local(req: LocalRequest, t = this.nowMs): { reqId: number; out: ClusterStep } {
    const reqId = ++this.localReqId;
    return { reqId, out: this.step({ kind: 'localCall', reqId, req }, t) };
  }

  heartbeat(node: string, over: Partial<Heartbeat> = {}, t = this.nowMs): ClusterStep {
    const seq = (this.seq.get(node) ?? 0) + 1;
    this.seq.set(node, seq);
    const incarnation = this.incarnations.get(node) ?? 1n;
    return this.step({ kind: 'agentHeartbeat', hb: { member: node, incarnation, seq, sentAtMs: t, jobs: this.reports.get(node) ?? [], freeUnits: 4, ...over } }, t);
  }

  grid(req: ClusterRequest, t = this.nowMs, incarnation = 1n, term = 0n): { reqId: number; out: ClusterStep } {
    const reqId = ++this.gridReqId;
    return { reqId, out: this.step({ kind: 'gridCall', call: { reqId, from: 'grid', fence: { term, incarnation }, req } }, t) };
  }

  answer(call: SentCall, answer: AgentAnswer, t = this.nowMs): ClusterStep {
    return this.step({ kind: 'agentAnswer', node: call.to, reqId: call.reqId, answer }, t);
  }

  /** Every agent registers and heartbeats at t, in NODES order. */
  register(nodes = NODES, t = this.nowMs, incarnation = 1n): void {
    for (const n of nodes) {
      this.registerNode(n, incarnation, 4, t);
      this.heartbeat(n, { incarnation }, t);
      this.nextBeatAt.set(n, t + 50);
    }
  }

  /**
   * Moves time to `toMs`: the alive nodes heartbeat every 50 ms, the core is
   * ticked at each of its deadlines; `until` stops early after the first
   * step for which it returns true. Returns the steps taken.
   */
  advance(toMs: number, alive: string[], until?: (l: Logged) => boolean): Logged[] {
    const from = this.log.length;
    let spins = 0;
    for (;;) {
      const beats = alive.map((n) => this.nextBeatAt.get(n) ?? this.nowMs);
      const nextBeat = beats.length > 0 ? Math.min(...beats) : Infinity;
      const deadline = this.core.nextDeadline();
      // Deadlines may fall between whole ms (detector crossings); the driver feeds whole ms.
      const d = deadline === null ? Infinity : Math.ceil(deadline);
      const t = Math.max(this.nowMs, Math.min(nextBeat, d));
      if (t > toMs) break;
      const before = this.log.length;
      if (t > this.nowMs) spins = 0;
      if (nextBeat <= d) {
        const n = alive[beats.indexOf(nextBeat)]!;
        this.nextBeatAt.set(n, nextBeat + 50);
        this.heartbeat(n, {}, t);
      } else {
        // A tick must move the core's deadline past t (else the driver's timer would fire again at once, forever).
        if (t === this.nowMs && ++spins > 100) throw new Error(`the core's deadline stays at ${deadline} at ${t}: the driver would spin`);
        this.step({ kind: 'tick' }, t);
      }
      // (A step may be followed by the grid's answer to its heartbeat: both are looked at.)
      if (until && this.log.slice(before).some(until)) return this.log.slice(from);
    }
    this.nowMs = toMs;
    return this.log.slice(from);
  }

  /** The time of the last accepted heartbeat of a node. */
  lastBeatOf(node: string): number {
    const l = [...this.log].reverse().find((x) => x.input.kind === 'agentHeartbeat' && x.input.hb.member === node);
    return l?.t ?? -1;
  }
}

export function calls(out: ClusterStep): SentCall[] {
  return out.send.flatMap((s) => ('call' in s ? [{ to: s.to, reqId: s.call.reqId, req: s.call.req }] : []));
}

export function callsOf(steps: Logged[]): Array<SentCall & { t: number }> {
  return steps.flatMap((l) => calls(l.out).map((c) => ({ ...c, t: l.t })));
}

/** The answer to the one agent heartbeat a step replied to. */
export function beatAnswer(out: ClusterStep): HeartbeatAnswer {
  const beats = out.reply.flatMap((r) => (r.kind === 'beat' ? [r.answer] : []));
  expect(beats).toHaveLength(1);
  return beats[0]!;
}

export const gridAnswers = (out: ClusterStep) => out.reply.flatMap((r) => (r.kind === 'answer' && r.to === 'grid' ? [{ reqId: r.reqId, answer: r.answer }] : []));

export const localAnswers = (out: ClusterStep): Array<{ reqId: number; answer: LocalAnswer }> => out.reply.flatMap((r) => (r.kind === 'answer' && r.to === 'local' ? [{ reqId: r.reqId, answer: r.answer }] : []));

/** An agent call exactly as the cluster sends it. */
export function agentCall(reqId: number, req: AgentRequest): AgentCall {
  return { reqId, from: 'c1', incarnation: 1n, req };
}

/**
 * Registers the three nodes at t=0 and submits the job at t=10, answering
 * every start ok at t=20: the job runs on PLACED.
 */
export function runningJob(h: ClusterHarness): void {
  h.step({ kind: 'tick' }, 0);
  h.register(NODES, 0);
  const { out } = h.grid({ kind: 'submitJob', jobId: JOB, units: UNITS, gen: 1, leaseMs: 0 }, 10);
  const starts = calls(out);
  expect(starts.map((c) => c.to)).toEqual(NODES);
  for (const c of starts) h.answer(c, { kind: 'ok' }, 20);
  expect(h.core.jobState(JOB)).toBe('running');
  h.nowMs = 20;
}

/** Runs a grid round of `epoch` through to its committed answer at the current time; returns the manifest. */
export function commitEpoch(h: ClusterHarness, epoch: bigint, parentEpoch: bigint | null) {
  const prep = h.grid({ kind: 'prepare', jobId: JOB, epoch, parentEpoch });
  for (const c of calls(prep.out)) h.answer(c, { kind: 'prepared', pages: 1, bytes: 4096, done: false });
  const com = h.grid({ kind: 'commit', jobId: JOB, epoch });
  let last: ClusterStep | null = null;
  for (const c of calls(com.out)) {
    const units = h.core.jobView(JOB)!.placement;
    last = h.answer(c, { kind: 'durable', part: { writer: c.to, epoch, units: [...units].filter(([, n]) => n === c.to).map(([u]) => u), pages: 1 } });
  }
  const manifest = last!.persist[0]!;
  const done = h.step({ kind: 'persisted', what: manifest });
  expect(gridAnswers(done)).toEqual([{ reqId: com.reqId, answer: { kind: 'committed', epoch } }]);
  return manifest;
}

// ---- local jobs -----------------------------------------------------------------

export const LJOB = 'solo';
export const LUNITS = ['s0', 's1', 's2'];
export const SPEC = { intervalMs: 100, fullEvery: 2 };

/** Registers the three nodes at 0 and submits the local job at 10; returns the submit. */
export function submitLocal(h: ClusterHarness, spec = SPEC): { reqId: number; out: ClusterStep } {
  h.step({ kind: 'tick' }, 0);
  h.register(NODES, 0);
  return h.local({ kind: 'submitJob', jobId: LJOB, units: LUNITS, ...spec }, 10);
}

/** The local job running from 20 on: s0 on c1n1, s1 on c1n2, s2 on c1n3 (starts gen G(1..3)). */
export function localJob(h: ClusterHarness, spec = SPEC): void {
  const sub = submitLocal(h, spec);
  let last: ClusterStep | null = null;
  for (const c of calls(sub.out)) last = h.answer(c, { kind: 'ok' }, 20);
  expect(localAnswers(last!)).toEqual([{ reqId: sub.reqId, answer: { kind: 'ok' } }]);
  expect(h.core.jobState(LJOB)).toBe('running');
}

/** Answers the PREPAREs in `out`, then the COMMITs, then reports the manifest written; returns that last step. */
export function finishRound(h: ClusterHarness, out: ClusterStep, o: { done?: boolean; pages?: number } = {}): ClusterStep {
  let last = out;
  for (const c of calls(out).filter((x) => x.req.kind === 'prepare')) last = h.answer(c, { kind: 'prepared', pages: o.pages ?? 1, bytes: 4096, done: o.done ?? false });
  for (const c of calls(last).filter((x) => x.req.kind === 'commit')) {
    const epoch = c.req.kind === 'commit' ? c.req.epoch : 0n;
    last = h.answer(c, { kind: 'durable', part: { writer: c.to, epoch, units: [], pages: 1 } });
  }
  expect(last.persist).toHaveLength(1);
  return h.step({ kind: 'persisted', what: last.persist[0]! });
}
