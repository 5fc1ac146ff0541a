import { GridError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import type { AgentClient } from '../wire/agent-client.js';
import type { TierRuntime } from '../wire/clients.js';
import { incarnationRefusal } from '../protocol/bounds.js';
import type { GridFence } from '../protocol/grid-fence.js';
import type { RestartPolicy } from '../protocol/job-spec.js';
import { ReplyWaiters } from '../runtime/reply-waiters.js';
import { SerialDriver } from '../runtime/serial-driver.js';
import { ClusterSupervisor } from './core/supervisor.js';
import type { ClusterEvent, ClusterInput, ClusterPersist, ClusterReply, ClusterSend, ClusterSupervisorConfig, JobRow, LocalAnswer } from './core/supervisor-types.js';
import type { AdoptSource, ClusterAnswer, ClusterRequest, Heartbeat, HeartbeatAnswer, JobAction, MemberJobState } from '../protocol/messages.js';
import { commitEpoch, storedSpecOf } from '../store/index.js';
import { performAgentCall, type DurablePart } from './agent-calls.js';
import { EpochSweeper } from './epoch-sweeper.js';
import { EpochCollector } from './epoch-collector.js';
import { DEFAULT_RETENTION, validateRetention, type RetentionPolicy } from './core/retention.js';
import type { JobReport } from './codec.js';
import type { JobTable } from './job-table.js';

// The cluster coordinator's shell over its pure core (ClusterSupervisor,
// core/supervisor.ts): every decision — membership, placement, leases,
// fencing, rounds, restarts, the end of a job — is the core's. The shell
// turns each gRPC request into a core input and waits for the core's reply
// to it; it performs the core's actions through one SerialDriver: manifests
// and job-table rows written (and waited for) before anything is sent, then
// calls to agents over gRPC (agent-calls.ts), whose answers are inputs again.
// What it keeps that the core does not: agents' addresses and clients, the
// jobs' unit specs, other clusters' store directories (named by a grid
// restore), and durable parts' records until their manifest is written.

export interface ClusterShellSettings {
  clusterId: string;
  incarnation: bigint;
  storeDir: string;
  core: Omit<ClusterSupervisorConfig, 'clusterId' | 'incarnation'>;
  defaultCheckpointIntervalMs: number;
  defaultFullEvery: number;
  rpcTimeoutMs: number;
}

export interface NodeAddress {
  incarnation: bigint;
  address: string;
  labels: Record<string, string>;
  client: AgentClient;
}

/** Where a step's events go (Watch, metrics, logs): see watch-events.ts. */
export type ClusterEventSink = (events: ClusterEvent[]) => void;

export interface Resume {
  rows: JobRow[];
  specs: Map<string, JobSpec>;
  committed: Map<string, bigint[]>;
  /** Deleted jobs' highest epochs (the job table's). */
  forgotten?: Map<string, bigint>;
}

/** Sends one of the core's heartbeats to the grid (grid-link.ts): its answer, or null when it got none. */
export type GridBeat = (hb: Heartbeat) => Promise<HeartbeatAnswer | null>;

export class ClusterShell {
  readonly core: ClusterSupervisor;
  private readonly driver: SerialDriver<ClusterInput, ClusterPersist, ClusterSend, ClusterReply>;
  readonly nodes = new Map<string, NodeAddress>();
  private readonly specs: Map<string, JobSpec>;
  /** Store directories by cluster id: this cluster's, and those a grid restore adopts from. */
  private readonly stores = new Map<string, string>();
  private readonly parts = new Map<string, DurablePart>();
  private readonly waiters = new ReplyWaiters('the cluster coordinator');
  private readonly sweepers = new Map<string, EpochSweeper>();
  /** Garbage collection of committed epochs (retention: core/retention.ts). */
  readonly collector: EpochCollector;
  /** Retirements that failed (an environment failure, e.g. a read-only store), for the metrics. */
  retireFailures = 0;
  private reqs = 0;
  private gridBeat: GridBeat | null = null;
  private stopped = false;

  constructor(
    readonly settings: ClusterShellSettings,
    readonly runtime: TierRuntime,
    readonly log: Logger,
    private readonly sink: ClusterEventSink,
    private readonly table: JobTable | null,
    resume: Resume | null,
  ) {
    this.specs = new Map(resume?.specs ?? []);
    this.stores.set(settings.clusterId, settings.storeDir);
    this.core = new ClusterSupervisor(
      { ...settings.core, clusterId: settings.clusterId, incarnation: settings.incarnation },
      resume ? { rows: resume.rows, committed: resume.committed, ...(resume.forgotten ? { forgotten: resume.forgotten } : {}) } : undefined,
    );
    this.driver = new SerialDriver(this.core, {
      clock: runtime.clock,
      timers: runtime.timers,
      persist: (p, done) => this.persist(p, done),
      persisted: (p) => (p.kind === 'manifest' ? { kind: 'persisted', what: p } : null),
      persistFailed: (p, reason) => ({ kind: 'persistFailed', what: p, reason }),
      send: (s) => this.send(s),
      reply: (r) => this.reply(r),
      tick: () => ({ kind: 'tick' }),
      afterStep: () => this.afterStep(),
    });
    this.collector = new EpochCollector(settings.storeDir, () => runtime.clock.wallMs(), log, {
      retired: (jobId, epoch) => { if (!this.stopped) this.driver.input({ kind: 'epochRetired', jobId, epoch }); },
      failed: () => { this.retireFailures += 1; },
    }, settings.core.maxJobs);
    this.driver.input({ kind: 'tick' });
  }

  // ---- requests (the gRPC service's) ----

  async registerNode(n: { nodeId: string; incarnation: bigint; address: string; capacityUnits: number; labels: Record<string, string> }): Promise<void> {
    const old = this.nodes.get(n.nodeId);
    // The core's own check, before the address is touched: a registration it will refuse must not redirect the
    // calls to a live node (its next ones, in this step or any other) to whoever sent it.
    const refusal = incarnationRefusal(`node ${n.nodeId}`, this.core.nodeIncarnation(n.nodeId), n.incarnation);
    if (refusal !== null) throw new GridError('failed-precondition', refusal);
    // The address first: calls the core makes in the same step (a restart in place) go to the new one.
    if (old?.address !== n.address) {
      old?.client.close();
      this.nodes.set(n.nodeId, { ...n, client: this.runtime.clients.agentClient(n.address, this.settings.rpcTimeoutMs, n.nodeId) });
    } else {
      this.nodes.set(n.nodeId, { ...old, incarnation: n.incarnation, labels: n.labels });
    }
    const reqId = this.nextReq();
    const a = await this.ask<{ ok: true } | { ok: false; reason: string }>(`reg#${reqId}`, { kind: 'nodeRegistered', reqId, nodeId: n.nodeId, incarnation: n.incarnation, capacityUnits: n.capacityUnits });
    if (!a.ok) throw new GridError('failed-precondition', a.reason);
    this.log.info({ node: n.nodeId, incarnation: String(n.incarnation), address: n.address, capacity: n.capacityUnits }, 'node registered');
  }

  heartbeat(nodeId: string, incarnation: bigint, seq: number, reports: readonly JobReport[]): Promise<{ known: boolean; leasedJobs: string[] }> {
    const hb = { member: nodeId, incarnation, seq, sentAtMs: Math.floor(this.runtime.clock.nowMs()), jobs: reports.map(memberReport), freeUnits: 0 };
    return this.ask<{ known: boolean; leasedJobs: string[] }>(`beat#${nodeId}#${seq}`, { kind: 'agentHeartbeat', hb });
  }

  /** Job states pushed between beats (ReportJobs): judged like a beat's, but no beat for the detector or the leases. */
  reportJobs(nodeId: string, incarnation: bigint, reports: readonly JobReport[]): { known: boolean } {
    const known = this.core.knowsNode(nodeId, incarnation);
    if (known) this.driver.input({ kind: 'agentReports', member: nodeId, incarnation, jobs: reports.map(memberReport) });
    return { known };
  }

  /** gridFence: a grid-managed submit's (null: the newest this cluster has seen, as a grid before fences on submits sent). */
  async submitJob(spec: JobSpec, gridManaged: boolean, gridGen = 0, gridLeaseMs = 0, restartPolicy: RestartPolicy | null = null, gridFence: GridFence | null = null): Promise<void> {
    const live = this.core.jobView(spec.jobId);
    if (live && (live.state === 'running' || live.state === 'recovering' || live.state === 'starting')) {
      throw new GridError('already-exists', `job ${spec.jobId} is already ${live.state} in cluster ${this.settings.clusterId}`);
    }
    if (spec.units.length === 0) throw new GridError('invalid-argument', `job ${spec.jobId} has no units`);
    retentionOf(spec);
    this.specs.set(spec.jobId, spec);
    const units = spec.units.map((u) => u.unitId);
    if (gridManaged) {
      expectOk(await this.askGrid({ kind: 'submitJob', jobId: spec.jobId, units, gen: gridGen, leaseMs: gridLeaseMs, ...(restartPolicy ? { restartPolicy } : {}) }, gridFence ?? this.core.gridFence()), 'already-exists');
      return;
    }
    const reqId = this.nextReq();
    const a = await this.ask<LocalAnswer>(`local#${reqId}`, {
      kind: 'localCall', reqId,
      req: {
        kind: 'submitJob', jobId: spec.jobId, units, intervalMs: spec.checkpointIntervalMs || this.settings.defaultCheckpointIntervalMs, fullEvery: spec.fullEvery || this.settings.defaultFullEvery,
        ...(restartPolicy ? { restartPolicy } : {}),
      },
    });
    if (a.kind === 'refused') throw new GridError(a.code ?? 'failed-precondition', a.reason);
  }

  async checkpointJob(jobId: string): Promise<Extract<LocalAnswer, { kind: 'committed' }>> {
    const reqId = this.nextReq();
    const a = await this.ask<LocalAnswer>(`local#${reqId}`, { kind: 'localCall', reqId, req: { kind: 'checkpoint', jobId } });
    if (a.kind === 'refused') throw new GridError(a.code ?? 'aborted', a.reason);
    if (a.kind !== 'committed') throw new GridError('internal', `checkpoint of job ${jobId} answered ${a.kind}`);
    return a;
  }

  /** Job control of a job this cluster runs on its own (core/supervisor-control.ts). */
  async controlJob(jobId: string, action: JobAction, epoch: bigint | null): Promise<Exclude<LocalAnswer, { kind: 'refused' | 'committed' }>> {
    const reqId = this.nextReq();
    const a = await this.ask<LocalAnswer>(`local#${reqId}`, { kind: 'localCall', reqId, req: { kind: 'control', jobId, action, epoch } });
    if (a.kind === 'refused') throw new GridError(a.code ?? 'failed-precondition', a.reason);
    if (a.kind === 'committed') throw new GridError('internal', `job ${action} of ${jobId} answered ${a.kind}`);
    return a;
  }

  async gridPrepare(jobId: string, epoch: bigint, fence: GridFence, parentEpoch: bigint | null, full: boolean): Promise<{ pages: number; bytes: number; done: boolean }> {
    const a = await this.askGrid({ kind: 'prepare', jobId, epoch, parentEpoch: full ? null : parentEpoch }, fence);
    if (a.kind !== 'prepared') throw gridRefusal(a, 'aborted');
    return { pages: a.pages, bytes: a.bytes, done: a.done };
  }

  /** The grid is done with the job (completed or failed): its units stop here. */
  async gridStop(jobId: string, fence: GridFence): Promise<void> {
    expectOk(await this.askGrid({ kind: 'stopJob', jobId }, fence), 'failed-precondition');
  }

  async gridCommit(jobId: string, epoch: bigint, fence: GridFence): Promise<void> {
    const a = await this.askGrid({ kind: 'commit', jobId, epoch }, fence);
    if (a.kind !== 'committed') throw gridRefusal(a, 'aborted');
  }

  async gridAbort(jobId: string, epoch: bigint, fence: GridFence): Promise<void> {
    expectOk(await this.askGrid({ kind: 'abort', jobId, epoch }, fence), 'failed-precondition');
  }

  /** The grid's recovery after it lost a cluster: roll this share back and adopt the lost cluster's units. */
  async restoreGridJob(r: { jobId: string; gridFence: GridFence; gen: number; leaseMs: number; spec: JobSpec; epoch: bigint | null; adopt: Array<AdoptSource & { storeDir: string }>; restartPolicy?: RestartPolicy | null }): Promise<void> {
    for (const a of r.adopt) this.stores.set(a.fromCluster, a.storeDir);
    this.specs.set(r.jobId, r.spec);
    const adopt = r.adopt.map((a) => ({ fromCluster: a.fromCluster, epoch: a.epoch, units: a.units }));
    const restartPolicy = r.restartPolicy ?? null;
    expectOk(await this.askGrid({ kind: 'restoreJob', jobId: r.jobId, units: r.spec.units.map((u) => u.unitId), epoch: r.epoch, adopt, gen: r.gen, leaseMs: r.leaseMs, ...(restartPolicy ? { restartPolicy } : {}) }, r.gridFence), 'failed-precondition');
  }

  /** From now on the core's heartbeats to the grid go through this (grid-link.ts); its answers renew the grid's leases. */
  attachGrid(beat: GridBeat | null): void {
    this.gridBeat = beat;
  }

  shutdown(): void {
    this.stopped = true;
    this.driver.stop();
    this.collector.stop();
    for (const n of this.nodes.values()) n.client.close();
    this.waiters.close();
  }

  // ---- the driver's ports ----

  private persist(p: ClusterPersist, done: (error: string | null) => void): void {
    if (p.kind === 'jobForgotten') {
      if (!this.table) return done(null);
      this.table.forget(p.jobId, p.highestEpoch, 4 * this.settings.core.maxJobs).then(() => done(null), (err: unknown) => {
        const reason = err instanceof Error ? err.message : String(err);
        this.log.error({ jobId: p.jobId, err: reason }, 'could not remove a deleted job from the job table');
        done(reason);
      });
      return;
    }
    if (p.kind === 'jobRow') {
      const spec = this.specs.get(p.row.jobId);
      if (!this.table || !spec) return done(null);
      // A row holds what must be durable before the step's sends leave (the epochs a round may use, C3; the
      // starts' gens and placement, C9): a failed save is the core's to handle (it withholds them and retries).
      this.table.save({ row: p.row, spec: storedSpecOf(spec), retention: retentionOr(spec) }).then(() => done(null), (err: unknown) => {
        const reason = err instanceof Error ? err.message : String(err);
        this.log.error({ jobId: p.row.jobId, err: reason }, 'could not save the job table');
        done(reason);
      });
      return;
    }
    const spec = this.specs.get(p.jobId);
    const parts = p.parts.map((x) => this.parts.get(partKey(p.jobId, p.epoch, x.writer)));
    if (!spec || parts.some((x) => x === undefined)) return done(`epoch ${p.epoch} of job ${p.jobId}: a part's record or the job's spec is gone`);
    const kept = parts as DurablePart[];
    commitEpoch({
      storeDir: this.settings.storeDir, jobId: p.jobId, epoch: p.epoch, parentEpoch: p.parentEpoch, full: p.full,
      createdUnixMs: this.runtime.clock.wallMs(),
      containers: kept.flatMap((x) => x.containers),
      parts: kept.map((x) => x.part),
      // The core makes the first epoch after any restart full, so each writer holds its own parts.
      layout: { spec: storedSpecOf(spec), placement: p.placement, partOwners: Object.fromEntries(kept.map((x) => [x.part.nodeId, x.part.nodeId])) },
    }).then(() => done(null), (err: unknown) => done(err instanceof Error ? err.message : String(err)));
  }

  private send(s: ClusterSend): void {
    if ('heartbeat' in s) return this.beatGrid(s.heartbeat);
    const node = s.to;
    const reqId = s.call.reqId;
    const target = this.nodes.get(node);
    if (!target) {
      this.driver.input({ kind: 'agentUnreachable', node, reqId, reason: `node ${node} has no address here` });
      return;
    }
    void performAgentCall({
      client: target.client,
      spec: (id) => this.specs.get(id) ?? null,
      storeDir: (id) => this.stores.get(id) ?? null,
      keepPart: (jobId, epoch, writer, part) => this.parts.set(partKey(jobId, epoch, writer), part),
    }, node, s.call).then((r) => {
      if (this.stopped) return;
      this.driver.input(r.kind === 'answer' ? { kind: 'agentAnswer', node, reqId, answer: r.answer } : { kind: 'agentUnreachable', node, reqId, reason: r.reason });
    });
  }

  /** One of the core's heartbeats to the grid (its shares' states, its free room); the answer goes back to the core. */
  private beatGrid(hb: Heartbeat): void {
    if (!this.gridBeat) return;
    void this.gridBeat(hb).then((answer) => {
      if (answer && !this.stopped) this.driver.input({ kind: 'gridHeartbeatAnswer', sentAtMs: hb.sentAtMs, answer });
    });
  }

  private reply(r: ClusterReply): void {
    if (r.kind === 'beat') return this.wake(`beat#${r.to}#${r.seq}`, r.answer);
    if (r.kind === 'registered') return this.wake(`reg#${r.reqId}`, r.answer);
    this.wake(`${r.to === 'local' ? 'local' : 'grid'}#${r.reqId}`, r.answer);
  }

  private afterStep(): void {
    const events = this.core.drainEvents();
    if (events.length === 0) return;
    for (const e of events) {
      if (e.kind === 'gridRestored') this.collector.gridRestored(e.jobId, e.epoch);
      if (e.kind === 'gridLine') this.collector.gridLine(e.jobId, e.epoch);
      if (e.kind === 'jobForgotten') {
        this.specs.delete(e.jobId);
        this.sweepers.delete(e.jobId);
      }
      if (e.kind !== 'roundFinished') continue;
      const o = e.outcome;
      for (const key of [...this.parts.keys()]) if (key.startsWith(`${o.jobId}/`) && BigInt(key.split('/')[1]!) <= o.epoch) this.parts.delete(key);
      if (o.kind === 'committed') {
        this.sweeper(o.jobId).committed(o.epoch);
        const spec = this.specs.get(o.jobId);
        const gridManaged = this.core.jobView(o.jobId)?.gridManaged ?? false;
        this.collector.committed(o.jobId, { epoch: o.epoch, parentEpoch: o.parentEpoch, full: o.full }, gridManaged, spec ? retentionOr(spec) : DEFAULT_RETENTION);
      }
    }

    this.sink(events);
  }

  // ---- helpers ----

  private sweeper(jobId: string): EpochSweeper {
    let s = this.sweepers.get(jobId);
    if (!s) this.sweepers.set(jobId, s = new EpochSweeper(this.settings.storeDir, jobId, this.log));
    return s;
  }

  private nextReq(): number {
    return ++this.reqs;
  }

  private askGrid(req: ClusterRequest, fence: GridFence): Promise<ClusterAnswer> {
    const reqId = this.nextReq();
    return this.ask<ClusterAnswer>(`grid#${reqId}`, { kind: 'gridCall', call: { reqId, from: 'grid', fence, req } });
  }

  /** Feeds the input and resolves with the core's reply under key (rejects after a shutdown: unavailable). */
  private ask<A>(key: string, input: ClusterInput): Promise<A> {
    return this.waiters.ask<A>(key, () => this.driver.input(input));
  }

  private wake(key: string, answer: unknown): void {
    this.waiters.wake(key, answer);
  }
}

/** The job's retention as its spec sets it (validated: a bad one is invalid-argument naming the field). */
export function retentionOf(spec: JobSpec): RetentionPolicy {
  return validateRetention({
    keepLast: spec.keepEpochs === undefined || spec.keepEpochs === 0 ? DEFAULT_RETENTION.keepLast : spec.keepEpochs,
    keepForMs: spec.keepEpochsForMs === undefined ? 0 : Number(spec.keepEpochsForMs),
  }, spec.jobId);
}

/** A spec that skipped validation (a grid restore's) keeps the default retention rather than failing the step. */
function retentionOr(spec: JobSpec): RetentionPolicy {
  try {
    return retentionOf(spec);
  } catch {
    return DEFAULT_RETENTION;
  }
}

function partKey(jobId: string, epoch: bigint, writer: string): string {
  return `${jobId}/${epoch}/${writer}`;
}

function memberReport(r: JobReport): { jobId: string; state: MemberJobState; gen: number } {
  // A restore under way is the start the report names, running.
  return { jobId: r.jobId, state: r.state === 'restoring' ? 'running' : r.state, gen: Number(r.gen) };
}

function expectOk(a: ClusterAnswer, code: 'already-exists' | 'failed-precondition'): void {
  if (a.kind !== 'ok') throw gridRefusal(a, code);
}

function gridRefusal(a: ClusterAnswer, code: 'aborted' | 'already-exists' | 'failed-precondition'): GridError {
  switch (a.kind) {
    case 'corrupt': return new GridError('data-loss', `epoch ${a.epoch} of cluster ${a.store} is damaged: ${a.reason}`, { where: a.store, epoch: a.epoch });
    // ABORTED, not UNAVAILABLE: the grid asks a busy cluster again later, and takes UNAVAILABLE for a call that never arrived.
    case 'busy': return new GridError('aborted', a.reason);
    // A deposed grid's call (F1, protocol/grid-fence.ts): FAILED_PRECONDITION whatever the call.
    case 'refused': return new GridError(a.stale || a.reason.startsWith('fenced') ? 'failed-precondition' : code, a.reason);
    default: return new GridError('internal', `unexpected answer ${a.kind}`);
  }
}
