import type { ClusterEvent } from '../cluster/core/supervisor-types.js';
import type { RetentionPolicy } from '../cluster/core/retention.js';
import { GridSupervisor } from '../grid/core/supervisor.js';
import type { GridInput, GridJobRow, GridPersist, GridReply, GridSend, GridSupervisorConfig } from '../grid/core/supervisor-types.js';
import { Leadership, type LeadershipConfig, type LeadershipInput } from '../grid/core/leadership.js';
import type { SimEtcd } from './etcd-model.js';
import { NodeParticipant, type ParticipantConfig, type ParticipantInput, type ParticipantReply, type ParticipantSend, type UnitOp } from '../node/core/participant.js';
import type { AgentAnswer, AgentCall, ClusterAnswer, ClusterCall, Heartbeat, HeartbeatAnswer } from '../protocol/messages.js';
import { SerialDriver } from '../runtime/serial-driver.js';
import type { SimCluster } from './cluster-member.js';
import type { SimNet } from './net.js';
import { diskWrite, SimStore, type DiskFaults, type GridDisk } from './store.js';
import { SimUnits, type UnitCopy } from './units.js';
import { SimProcess, type World } from './world.js';

// The grid's members in the simulator: each is the real pure core behind the
// real SerialDriver, over simulated ports (network, disk, clock, timers,
// units). Nothing here decides anything; it carries actions and answers.
// Agents and the grid here; a cluster coordinator in cluster-member.ts.

export interface SimEnv {
  world: World;
  net: SimNet;
  disk: DiskFaults;
  stores: Map<string, SimStore>;
  gridDisk: GridDisk;
  agents: Map<string, SimAgent>;
  clusters: Map<string, SimCluster>;
  /** The grid that leads now, or led last (a lone grid: the grid). */
  grid: () => SimGrid;
  /** Every grid coordinator process (one, or three campaigning through the simulated etcd). */
  grids: SimGrid[];
  mutants: ReadonlySet<string>;
  /** After every step of any core: the checkers. */
  afterStep: (member: string) => void;
  /** What a cluster core reported after a step (drained at once: the checkers look at them). */
  onClusterEvents: (cluster: string, events: ClusterEvent[]) => void;
  /** Every call the grid sends (the checkers watch its epochs). */
  onGridSend: (to: string, call: ClusterCall) => void;
  /** A grid call goes to a cluster's core, and how it is answered; a heartbeat answer goes to it (the checkers judge the fences, F1). */
  onGridCallIn: (cluster: string, call: ClusterCall) => (answer: ClusterAnswer) => void;
  onGridBeatAnswered: (cluster: string, answer: HeartbeatAnswer) => void;
  /** Every call a cluster sends to an agent (the checkers watch the epochs it prepares). */
  onClusterSend: (cluster: string, to: string, call: AgentCall) => void;
  beforeOp: (copy: UnitCopy) => void;
  /** A cluster's garbage collection is about to demote a committed epoch of its store (the checkers judge it). */
  beforeRetire: (store: string, jobId: string, epoch: bigint) => void;
  /** Each job's retention in the simulated clusters (grid jobs keep at least the grid's lines). */
  retention: RetentionPolicy;
  opsPerUnit: number;
  opIntervalMs: number;
  nextCopyId: () => number;
  /** Whether a trace is kept: lines are built only then. */
  tracing: boolean;
  trace: (line: string) => void;
}

type AnswerFn<A> = (a: A) => void;

export class SimAgent {
  readonly proc: SimProcess;
  core!: NodeParticipant;
  driver!: SerialDriver<ParticipantInput, never, ParticipantSend, ParticipantReply>;
  units!: SimUnits;
  private replies = new Map<string, AnswerFn<AgentAnswer>>();
  /** A registration is in flight (one at a time). */
  private registering = false;

  constructor(readonly id: string, readonly clusterId: string, private readonly config: Omit<ParticipantConfig, 'incarnation' | 'nodeId'>, private readonly env: SimEnv) {
    this.proc = new SimProcess(id, env.world);
  }

  start(): void {
    this.proc.start();
    this.replies = new Map();
    this.core = new NodeParticipant({ ...this.config, nodeId: this.id, incarnation: this.proc.incarnation, mutants: this.env.mutants });
    const store = this.env.stores.get(this.clusterId)!;
    this.units = new SimUnits({
      proc: this.proc, participant: () => this.core, input: (i) => this.driver.input(i), store: (id) => this.env.stores.get(id),
      opsPerUnit: this.env.opsPerUnit, opIntervalMs: this.env.opIntervalMs, beforeOp: this.env.beforeOp, nextCopyId: this.env.nextCopyId,
    });
    // The old shell's start-up clean of the shared store (the bug it caused is a mutant now).
    if (this.env.mutants.has('agent-cleans-shared-store')) {
      for (const key of [...store.parts.keys()]) {
        const [job, epoch] = key.split('/');
        if (!store.manifests.has(`${job}/${epoch}`)) store.parts.delete(key);
      }
    }
    this.driver = new SerialDriver(this.core, {
      clock: this.env.world.clock,
      timers: this.proc.timers(),
      // The participant persists nothing through the driver: a part's write is a unit op (writePart).
      persist: (_p, done) => done(null),
      persistFailed: () => ({ kind: 'tick' }),
      send: (s) => {
        if (s.to === 'units') return s.unit.op === 'write' ? this.writePart(s.unit, store) : this.units.apply(s.unit);
        const cluster = this.env.clusters.get(this.clusterId)!;
        const sentAtMs = s.heartbeat.sentAtMs;
        this.env.net.call<HeartbeatAnswer>(this.proc, cluster.proc,
          (answer) => cluster.onAgentBeat(s.heartbeat, answer),
          (answer) => {
            // Unknown to the cluster (it restarted, or failed this incarnation): register again.
            if (!answer.known) this.register();
            this.driver.input({ kind: 'heartbeatAnswer', sentAtMs, answer });
          },
          () => undefined);
      },
      reply: (r) => {
        const key = `${r.to}#${r.reqId}`;
        this.replies.get(key)?.(r.answer);
        this.replies.delete(key);
      },
      tick: () => ({ kind: 'tick' }),
      afterStep: () => this.env.afterStep(this.id),
    });
    this.registering = false;
    // Registered first, then beating (the first step beats at once).
    this.register(() => this.driver.input({ kind: 'tick' }));
  }

  crash(): void {
    this.proc.crash();
    this.driver?.stop();
    this.units?.crash();
  }

  /** RegisterNode: retried every heartbeat interval until the cluster takes it. */
  private register(then?: () => void): void {
    if (this.registering || !this.proc.alive) return;
    this.registering = true;
    const cluster = this.env.clusters.get(this.clusterId)!;
    const inc = this.proc.incarnation;
    const retry = (why: string): void => {
      this.registering = false;
      if (this.env.tracing) this.env.trace(`${this.id} register: ${why}`);
      this.proc.deliver(this.config.heartbeatIntervalMs, () => this.register(then));
    };
    this.env.net.call<{ ok: boolean; reason?: string }>(this.proc, cluster.proc,
      (answer) => cluster.onRegister(this.id, inc, this.config.capacityUnits, answer),
      (answer) => {
        if (!answer.ok) return retry(answer.reason ?? 'refused');
        this.registering = false;
        then?.();
      },
      (reason) => retry(`unreachable: ${reason}`));
  }

  /** Writes the staged snapshot as this node's part (lost if unsynced at a crash); the result is an input. */
  private writePart(p: Extract<UnitOp, { op: 'write' }>, store: SimStore): void {
    const units = this.units.stagedFor(p.jobId, p.epoch) ?? new Map();
    diskWrite(this.proc, this.env.world.rng, this.env.disk, () => {
      store.parts.set(SimStore.partKey(p.jobId, p.epoch, p.writer), { units: new Map(units), damaged: false });
    }, (err) => {
      if (err === null) this.units.recordSaved(p.jobId, p.epoch, units);
      this.driver.input(err === null ? { kind: 'written', jobId: p.jobId, epoch: p.epoch, reqId: p.reqId } : { kind: 'partFailed', jobId: p.jobId, epoch: p.epoch, reqId: p.reqId, to: p.to, reason: err });
    });
  }

  /** A call from the cluster arrives. */
  onCall(call: Parameters<NodeParticipant['step']>[0] & { kind: 'call' }, answer: AnswerFn<AgentAnswer>): void {
    this.replies.set(`${call.call.from}#${call.call.reqId}`, answer);
    this.driver.input(call);
  }
}

/** What a grid coordinator needs to campaign through the simulated etcd (docs/grid-ha.md); null: a lone grid on its own disk. */
export interface SimGridHa {
  etcd: SimEtcd;
  leadership: LeadershipConfig;
  keepAliveMs: number;
  /** Until when this grid's calls to clusters are held back before they leave (the fault 'leader-isolated'); 0: none. */
  heldUntil: (gridId: string) => number;
  /** A grid started to lead (its core built from the catalog in etcd). */
  onLead: (grid: SimGrid) => void;
}

export class SimGrid {
  readonly proc: SimProcess;
  core!: GridSupervisor;
  driver!: SerialDriver<GridInput, GridPersist, GridSend, GridReply>;
  /** Whether this process runs a core that may decide (always, for a lone grid once started). */
  leading = false;
  readonly leadership: Leadership | null;
  /** The term this grid leads or last led (0: none; a lone grid has none). */
  term = 0n;
  private lease: { leaseId: number; term: bigint } | null = null;
  /** Bumped at each start and each change of leadership: timers and answers of an earlier one are dropped. */
  private epoch = 0;
  private beats = new Map<string, AnswerFn<HeartbeatAnswer>>();
  private registrations = new Map<string, AnswerFn<{ ok: boolean; reason: string }>>();
  private nextReq = 1;
  submitted: Array<{ reqId: number; ok: boolean; reason: string }> = [];
  /** An operator's calls (job control, a submit again) waiting for their answers; lost with a crash, as over gRPC. */
  private operatorReplies = new Map<number, AnswerFn<GridReply>>();
  private nextOperatorReq = 1_000;

  constructor(private readonly config: Omit<GridSupervisorConfig, 'incarnation'>, private readonly env: SimEnv, readonly id = 'grid', private readonly ha: SimGridHa | null = null) {
    this.proc = new SimProcess(id, env.world);
    this.leadership = ha ? new Leadership(ha.leadership) : null;
  }

  start(): void {
    this.proc.start();
    this.epoch += 1;
    this.beats = new Map();
    this.registrations = new Map();
    this.operatorReplies = new Map();
    if (!this.ha) return this.lead(structuredClone(this.env.gridDisk.catalog), 0n, this.env.gridDisk.forgotten);
    this.lease = null;
    this.campaign();
  }

  crash(): void {
    this.proc.crash();
    this.leading = false;
    this.driver?.stop();
  }

  // ---- leadership (HA) ----

  private campaign(): void {
    const ha = this.ha!;
    const epoch = this.epoch;
    this.env.net.call<{ leaseId: number; term: bigint }>(this.proc, ha.etcd.proc, (a) => a(ha.etcd.campaign(this.id)),
      (lease) => {
        if (epoch !== this.epoch) return;
        this.lease = lease;
        this.keepAlive(lease);
      },
      () => { if (epoch === this.epoch) this.proc.deliver(ha.keepAliveMs, () => this.campaign()); });
  }

  private keepAlive(lease: { leaseId: number; term: bigint }): void {
    const ha = this.ha!;
    if (this.lease !== lease) return;
    const sentAtMs = this.env.world.nowMs;
    this.env.net.call<{ alive: boolean; leads: boolean }>(this.proc, ha.etcd.proc, (a) => a(ha.etcd.keepAlive(lease.leaseId)),
      (r) => {
        if (this.lease !== lease) return;
        if (!r.alive) {
          this.lease = null;
          this.stepLeadership({ kind: 'lost', reason: 'etcd says the lease expired' });
          this.campaign();
          return;
        }
        if (!r.leads) return;
        const s = this.leadership!.state();
        this.stepLeadership(s.role === 'leader' && s.term === lease.term ? { kind: 'keptAlive', sentAtMs } : { kind: 'elected', term: lease.term, renewedSentAtMs: sentAtMs });
      },
      () => undefined);
    this.proc.deliver(ha.keepAliveMs, () => this.keepAlive(lease));
  }

  private stepLeadership(input: LeadershipInput): void {
    const l = this.leadership!;
    for (const a of l.step(input, this.env.world.nowMs)) {
      if (this.env.tracing) this.env.trace(`${this.id} ${a.kind} term ${a.term}${a.kind === 'stepDown' ? `: ${a.reason}` : ''}`);
      if (a.kind === 'stepDown') this.stepDown();
      else this.loadAndLead(a.term);
    }
    l.checkInvariants();
    const at = l.nextDeadline();
    if (at === null) return;
    const epoch = this.epoch;
    this.proc.deliver(Math.max(0, at - this.env.world.nowMs), () => { if (epoch === this.epoch) this.stepLeadership({ kind: 'tick' }); });
  }

  /** Elected: the catalog is read from etcd, then the core starts on it (if still leading by then). */
  private loadAndLead(term: bigint): void {
    const ha = this.ha!;
    this.epoch += 1;
    const epoch = this.epoch;
    this.env.net.call<{ rows: GridJobRow[]; forgotten: Record<string, string> }>(this.proc, ha.etcd.proc, (a) => a(ha.etcd.getCatalog()),
      (c) => { if (epoch === this.epoch && this.leadership!.mayDecide(this.env.world.nowMs)) this.lead(c.rows, term, c.forgotten); },
      () => { if (epoch === this.epoch) this.stepLeadership({ kind: 'lost', reason: 'could not read the catalog from etcd' }); });
  }

  private stepDown(): void {
    this.epoch += 1;
    this.leading = false;
    this.driver?.stop();
    // The lease may still live at etcd: let it go, and campaign anew (a new key, a newer term).
    this.lease = null;
    this.campaign();
  }

  // ---- the core ----

  private lead(catalog: GridJobRow[], term: bigint, forgottenIds: Record<string, string>): void {
    const forgotten = new Map(Object.entries(forgottenIds).map(([id, e]) => [id, BigInt(e)]));
    this.term = term;
    this.leading = true;
    const ha = this.ha;
    this.core = new GridSupervisor({ ...this.config, incarnation: this.proc.incarnation, mutants: this.env.mutants, ...(ha ? { leaderTerm: term, resumed: true } : {}) }, catalog, this.env.world.nowMs, new Map(), forgotten);
    this.driver = new SerialDriver(this.core, {
      clock: this.env.world.clock,
      timers: this.proc.timers(),
      persist: (p, done) => (ha ? this.putCatalog(ha, term, p, done) : diskWrite(this.proc, this.env.world.rng, this.env.disk, () => { this.env.gridDisk.catalog = structuredClone(p.jobs); this.env.gridDisk.forgotten = { ...(p.forgotten ?? {}) }; }, done)),
      persisted: (p) => (p.lineOf ? { kind: 'persisted', what: p } : null),
      persistFailed: (p, reason) => ({ kind: 'persistFailed', what: p, reason }),
      send: (s) => this.send(s),
      reply: (r) => {
        if (r.kind === 'beat') {
          this.beats.get(`${r.to}#${r.seq}`)?.(r.answer);
          this.beats.delete(`${r.to}#${r.seq}`);
          return;
        }
        if (r.kind === 'registered') {
          this.registrations.get(`${r.to}#${r.reqId}`)?.({ ok: r.ok, reason: r.reason });
          this.registrations.delete(`${r.to}#${r.reqId}`);
          return;
        }
        if (r.kind === 'submitted') this.submitted.push({ reqId: r.reqId, ok: r.ok, reason: r.reason });
        if (r.kind === 'submitted' || r.kind === 'controlled') {
          this.operatorReplies.get(r.reqId)?.(r);
          this.operatorReplies.delete(r.reqId);
        }
      },
      tick: () => ({ kind: 'tick' }),
      afterStep: () => this.env.afterStep(this.id),
    });
    ha?.onLead(this);
    this.driver.input({ kind: 'tick' });
  }

  /** The catalog in etcd, guarded by this leader's key: a deposed leader's write is refused (and it steps down). */
  private putCatalog(ha: SimGridHa, term: bigint, p: GridPersist, done: (error: string | null) => void): void {
    const epoch = this.epoch;
    this.env.net.call<boolean>(this.proc, ha.etcd.proc, (a) => a(ha.etcd.putCatalog(term, p.jobs, p.forgotten ?? {})),
      (ok) => {
        if (!ok && epoch === this.epoch) this.stepLeadership({ kind: 'lost', reason: 'a guarded catalog write found another leader' });
        done(ok ? null : `term ${term} no longer leads`);
      },
      (reason) => done(`etcd unreachable: ${reason}`));
  }

  /** An operator's request (a submit, job control) on the grid's machine: answered unless it crashes or steps down first. */
  operator(input: (reqId: number) => GridInput, answer: AnswerFn<GridReply>): void {
    if (!this.proc.alive || !this.leading) return;
    const reqId = this.nextOperatorReq++;
    this.operatorReplies.set(reqId, answer);
    this.driver.input(input(reqId));
  }

  private send(s: GridSend): void {
    const ha = this.ha;
    // Who may decide: nothing leaves as the leader's past its validity (the lease may be gone at etcd).
    if (ha && !this.leadership!.mayDecide(this.env.world.nowMs)) return this.stepLeadership({ kind: 'tick' });
    const held = ha ? ha.heldUntil(this.id) - this.env.world.nowMs : 0;
    if (held > 0) {
      if (this.env.tracing) this.env.trace(`${this.id} holds #${s.call.reqId} back for ${held} ms`);
      return this.proc.deliver(held, () => this.transmit(s));
    }
    this.transmit(s);
  }

  private transmit(s: GridSend): void {
    this.env.onGridSend(s.to, s.call);
    const cluster = this.env.clusters.get(s.to);
    const reqId = s.call.reqId;
    const from = s.to;
    const driver = this.driver;
    if (this.env.tracing) this.env.trace(`${this.id} -> ${from} #${reqId} ${describe(s.call.req)}`);
    this.env.net.call<ClusterAnswer>(this.proc, cluster?.proc, (a) => cluster!.onGridCall(s.call, a),
      (answer) => {
        if (this.env.tracing) this.env.trace(`${this.id} <- ${from} #${reqId} ${describe(answer)}`);
        driver.input({ kind: 'clusterAnswer', cluster: from, reqId, answer });
      },
      (reason) => {
        if (this.env.tracing) this.env.trace(`${this.id} <- ${from} #${reqId} unreachable: ${reason}`);
        driver.input({ kind: 'clusterUnreachable', cluster: from, reqId, reason });
      });
  }

  /** RegisterCluster (its store is named by its id); a standby refuses it. */
  onRegister(clusterId: string, incarnation: bigint, agentLeaseMs: number, answer: AnswerFn<{ ok: boolean; reason: string }>): void {
    if (!this.leading) return answer({ ok: false, reason: `${this.id} is a standby` });
    const reqId = this.nextReq++;
    this.registrations.set(`${clusterId}#${reqId}`, answer);
    this.driver.input({ kind: 'clusterRegistered', reqId, clusterId, incarnation, agentLeaseMs });
  }

  onClusterBeat(hb: Heartbeat, answer: AnswerFn<HeartbeatAnswer>): void {
    if (!this.leading) return answer({ known: false, leasedJobs: [], leaseMs: 0 });
    this.beats.set(`${hb.member}#${hb.seq}`, answer);
    this.driver.input({ kind: 'clusterHeartbeat', hb });
  }
}

/** One line of a message for the trace (bigints as numbers; the job id only when it is not the grid's bank job). */
export function describe(m: object): string {
  return JSON.stringify(m, (k, v: unknown) => (k === 'jobId' && v === 'bank' ? undefined : typeof v === 'bigint' ? Number(v) : v));
}
