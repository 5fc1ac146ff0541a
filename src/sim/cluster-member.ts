import { RetentionCore, type RetentionAction } from '../cluster/core/retention.js';
import { ClusterSupervisor } from '../cluster/core/supervisor.js';
import type { ClusterEvent } from '../cluster/core/supervisor-types.js';
import type { ClusterInput, ClusterPersist, ClusterReply, ClusterSend, ClusterSupervisorConfig, LocalAnswer, LocalRequest } from '../cluster/core/supervisor-types.js';
import type { AgentAnswer, ClusterAnswer, ClusterCall, Heartbeat, HeartbeatAnswer } from '../protocol/messages.js';
import { SerialDriver } from '../runtime/serial-driver.js';
import { describe, type SimEnv, type SimGrid } from './members.js';
import { diskWrite, SimStore } from './store.js';
import { SimProcess } from './world.js';

// A cluster coordinator in the simulator: the real ClusterSupervisor core
// behind the real SerialDriver, over simulated ports. Its manifests go to
// the cluster's store and its job table rows beside them; a restart reads
// both back (the rows, and the epochs the store holds) to resume. Agents'
// registrations, heartbeats and calls, the grid's calls and a local
// client's requests come in as inputs; replies go back by their ids.

type AnswerFn<A> = (a: A) => void;

export class SimCluster {
  readonly proc: SimProcess;
  core!: ClusterSupervisor;
  /** Garbage collection's core, rebuilt from the store by each incarnation (as the real shell's EpochCollector). */
  retention!: RetentionCore;
  driver!: SerialDriver<ClusterInput, ClusterPersist, ClusterSend, ClusterReply>;
  private beats = new Map<string, AnswerFn<HeartbeatAnswer>>();
  private replies = new Map<number, AnswerFn<ClusterAnswer>>();
  private registrations = new Map<string, AnswerFn<{ ok: boolean; reason?: string }>>();
  private localReplies = new Map<number, AnswerFn<LocalAnswer>>();
  private nextLocalReq = 1;
  /** Registered with the grid (this incarnation of each), and a registration in flight. */
  private gridRegistered = false;
  private gridRegistering = false;
  /** Which grid coordinator this cluster talks to (of several: the next one after a failure or a standby's refusal). */
  private gridIndex = 0;

  constructor(readonly id: string, private readonly config: Omit<ClusterSupervisorConfig, 'incarnation' | 'clusterId'>, private readonly env: SimEnv) {
    this.proc = new SimProcess(id, env.world);
  }

  start(): void {
    this.proc.start();
    this.beats = new Map();
    this.replies = new Map();
    this.registrations = new Map();
    this.localReplies = new Map();
    this.gridRegistered = false;
    this.gridRegistering = false;
    const store = this.env.stores.get(this.id)!;
    // The job table and the store's committed epochs, as a restarted coordinator reads them.
    const committed = new Map<string, bigint[]>();
    for (const m of store.manifests.values()) committed.set(m.jobId, [...(committed.get(m.jobId) ?? []), m.epoch]);
    for (const e of committed.values()) e.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const rows = [...store.table.values()].map((r) => structuredClone(r));
    this.retention = new RetentionCore({ maxJobs: 16, mutants: this.env.mutants });
    this.core = new ClusterSupervisor({ ...this.config, clusterId: this.id, incarnation: this.proc.incarnation, mutants: this.env.mutants }, { rows, committed, forgotten: new Map(store.forgotten) });
    this.driver = new SerialDriver(this.core, {
      clock: this.env.world.clock,
      timers: this.proc.timers(),
      persist: (p, done) => {
        const apply = p.kind === 'manifest' ? () => store.manifests.set(SimStore.manifestKey(p.jobId, p.epoch), p)
          : p.kind === 'jobRow' ? () => store.table.set(p.row.jobId, structuredClone(p.row))
            : () => { store.table.delete(p.jobId); store.forgotten.set(p.jobId, p.highestEpoch); };
        diskWrite(this.proc, this.env.world.rng, this.env.disk, apply, done);
      },
      persisted: (p) => (p.kind === 'manifest' ? { kind: 'persisted', what: p } : null),
      persistFailed: (p, reason) => ({ kind: 'persistFailed', what: p, reason }),
      send: (s) => {
        if ('heartbeat' in s) {
          // Registered first (RegisterCluster), then beating; a beat the grid does not know makes it register again.
          if (!this.gridRegistered) return this.registerWithGrid();
          const grid = this.targetGrid();
          const at = this.gridIndex;
          const sentAtMs = s.heartbeat.sentAtMs;
          return this.env.net.call<HeartbeatAnswer>(this.proc, grid.proc, (a) => grid.onClusterBeat(s.heartbeat, a),
            (answer) => {
              if (!answer.known) this.gridRegistered = false;
              this.env.onGridBeatAnswered(this.id, answer);
              this.driver.input({ kind: 'gridHeartbeatAnswer', sentAtMs, answer });
            }, () => this.nextGrid(at));
        }
        this.env.onClusterSend(this.id, s.to, s.call);
        const agent = this.env.agents.get(s.to);
        const node = s.to;
        const reqId = s.call.reqId;
        if (this.env.tracing) this.env.trace(`${this.id} -> ${node} #${reqId} ${describe(s.call.req)}`);
        this.env.net.call<AgentAnswer>(this.proc, agent?.proc, (a) => agent!.onCall({ kind: 'call', call: s.call }, a),
          (answer) => {
            if (this.env.tracing) this.env.trace(`${this.id} <- ${node} #${reqId} ${describe(answer)}`);
            this.driver.input({ kind: 'agentAnswer', node, reqId, answer });
          },
          (reason) => {
            if (this.env.tracing) this.env.trace(`${this.id} <- ${node} #${reqId} unreachable: ${reason}`);
            this.driver.input({ kind: 'agentUnreachable', node, reqId, reason });
          });
      },
      reply: (r) => {
        if (r.kind === 'beat') {
          this.beats.get(`${r.to}#${r.seq}`)?.(r.answer);
          this.beats.delete(`${r.to}#${r.seq}`);
          return;
        }
        if (r.kind === 'registered') {
          this.registrations.get(`${r.to}#${r.reqId}`)?.(r.answer);
          this.registrations.delete(`${r.to}#${r.reqId}`);
          return;
        }
        if (r.to === 'local') {
          if (this.env.tracing) this.env.trace(`${this.id} -> local #${r.reqId} ${describe(r.answer)}`);
          this.localReplies.get(r.reqId)?.(r.answer);
          this.localReplies.delete(r.reqId);
          return;
        }
        this.replies.get(r.reqId)?.(r.answer);
        this.replies.delete(r.reqId);
      },
      tick: () => ({ kind: 'tick' }),
      afterStep: () => {
        const events = this.core.drainEvents();
        this.env.onClusterEvents(this.id, events);
        this.collect(events);
        this.env.afterStep(this.id);
      },
    });
    this.driver.input({ kind: 'tick' });
  }

  /** The shell's part of garbage collection: commits and grid restores to the retention core, its retirements to the store. */
  private collect(events: ClusterEvent[]): void {
    const store = this.env.stores.get(this.id)!;
    const now = this.env.world.nowMs;
    for (const e of events) {
      if (e.kind === 'gridLine') this.perform(this.retention.step({ kind: 'gridLine', jobId: e.jobId, epoch: e.epoch }, now));
      if (e.kind === 'gridRestored') this.perform(this.retention.step({ kind: 'gridRestored', jobId: e.jobId, epoch: e.epoch }, now));
      if (e.kind !== 'roundFinished' || e.outcome.kind !== 'committed') continue;
      const o = e.outcome;
      const gridManaged = this.core.jobView(o.jobId)?.gridManaged ?? false;
      if (!this.retention.knows(o.jobId)) {
        const epochs = [...store.manifests.values()].filter((m) => m.jobId === o.jobId && m.epoch !== o.epoch)
          .map((m) => ({ epoch: m.epoch, parentEpoch: m.parentEpoch, full: m.full, committedAtMs: 0 }));
        this.perform(this.retention.step({ kind: 'jobKnown', jobId: o.jobId, gridManaged, policy: this.env.retention, epochs }, now));
      }
      this.perform(this.retention.step({ kind: 'committed', jobId: o.jobId, facts: { epoch: o.epoch, parentEpoch: o.parentEpoch, full: o.full, committedAtMs: now } }, now));
    }
    this.retention.checkInvariants();
  }

  /** A retirement: demote (the manifest goes), then the parts, each a disk write a crash may lose. */
  private perform(actions: RetentionAction[]): void {
    const store = this.env.stores.get(this.id)!;
    const inc = this.proc.incarnation;
    for (const a of actions) {
      const key = SimStore.manifestKey(a.jobId, a.epoch);
      const failed = (reason: string | null): boolean => {
        if (reason === null || this.proc.incarnation !== inc) return false;
        this.perform(this.retention.step({ kind: 'retireFailed', jobId: a.jobId, epoch: a.epoch, reason }, this.env.world.nowMs));
        return true;
      };
      diskWrite(this.proc, this.env.world.rng, this.env.disk, () => {
        if (!store.manifests.has(key)) return;
        if (this.env.tracing) this.env.trace(`${this.id} retires epoch ${a.epoch} of job ${a.jobId}`);
        this.env.beforeRetire(this.id, a.jobId, a.epoch);
        store.manifests.delete(key);
      }, (error) => {
        if (failed(error)) return;
        diskWrite(this.proc, this.env.world.rng, this.env.disk, () => {
          for (const k of [...store.parts.keys()]) if (k.startsWith(`${key}/`)) store.parts.delete(k);
        }, (error2) => {
          if (failed(error2) || this.proc.incarnation !== inc) return;
          this.perform(this.retention.step({ kind: 'retired', jobId: a.jobId, epoch: a.epoch }, this.env.world.nowMs));
          this.driver.input({ kind: 'epochRetired', jobId: a.jobId, epoch: a.epoch });
        });
      });
    }
  }

  onRegister(nodeId: string, incarnation: bigint, capacityUnits: number, answer: AnswerFn<{ ok: boolean; reason?: string }>): void {
    const reqId = this.nextLocalReq++;
    this.registrations.set(`${nodeId}#${reqId}`, answer);
    this.driver.input({ kind: 'nodeRegistered', reqId, nodeId, incarnation, capacityUnits });
  }

  /** RegisterCluster, one at a time; a refused or lost one is tried again at the next beat. */
  private registerWithGrid(): void {
    if (this.gridRegistering || !this.proc.alive) return;
    this.gridRegistering = true;
    const grid = this.targetGrid();
    const at = this.gridIndex;
    const inc = this.proc.incarnation;
    this.env.net.call<{ ok: boolean; reason: string }>(this.proc, grid.proc, (a) => grid.onRegister(this.id, inc, this.config.agentLeaseMs, a),
      (answer) => {
        this.gridRegistering = false;
        this.gridRegistered = answer.ok;
        if (!answer.ok) this.nextGrid(at);
        if (this.env.tracing) this.env.trace(`${this.id} grid register: ${answer.ok ? 'ok' : answer.reason}`);
      },
      (reason) => {
        this.gridRegistering = false;
        this.nextGrid(at);
        if (this.env.tracing) this.env.trace(`${this.id} grid register: unreachable: ${reason}`);
      });
  }

  private targetGrid(): SimGrid {
    return this.env.grids[this.gridIndex % this.env.grids.length]!;
  }

  /** Of several grid coordinators, the next one after the one a failed call went to (as grid-link.ts rotates through its --grid addresses). */
  private nextGrid(failedAt: number): void {
    if (this.env.grids.length < 2 || failedAt !== this.gridIndex) return;
    this.gridIndex += 1;
    this.gridRegistered = false;
  }

  /** A local client's call (the CLI on the coordinator's machine: no network). */
  localCall(req: LocalRequest, answer: AnswerFn<LocalAnswer>): void {
    const reqId = this.nextLocalReq++;
    if (this.env.tracing) this.env.trace(`local -> ${this.id} #${reqId} ${describe(req)}`);
    this.localReplies.set(reqId, answer);
    this.driver.input({ kind: 'localCall', reqId, req });
  }

  crash(): void {
    this.proc.crash();
    this.driver?.stop();
  }

  onAgentBeat(hb: Heartbeat, answer: AnswerFn<HeartbeatAnswer>): void {
    this.beats.set(`${hb.member}#${hb.seq}`, answer);
    this.driver.input({ kind: 'agentHeartbeat', hb });
  }

  onGridCall(call: ClusterCall, answer: AnswerFn<ClusterAnswer>): void {
    // Several grids number their calls each from 1: here, as in the real shell, each gets a number of this cluster's.
    const reqId = this.env.grids.length > 1 ? this.nextLocalReq++ : call.reqId;
    const judge = this.env.onGridCallIn(this.id, call);
    this.replies.set(reqId, (a) => {
      judge(a);
      answer(a);
    });
    this.driver.input({ kind: 'gridCall', call: { ...call, reqId } });
  }
}
