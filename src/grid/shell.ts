import { GridError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import type { ClusterClient } from '../wire/cluster-client.js';
import type { TierRuntime } from '../wire/clients.js';
import { ReplyWaiters } from '../runtime/reply-waiters.js';
import { SerialDriver } from '../runtime/serial-driver.js';
import type { Heartbeat, HeartbeatAnswer, JobAction } from '../protocol/messages.js';
import type { RestartPolicy } from '../protocol/job-spec.js';
import { storedSpecOf } from '../store/index.js';
import { GridSupervisor } from './core/supervisor.js';
import type { CheckpointAnswer, ControlAnswer, GridEvent, GridInput, GridPersist, GridReply, GridSend, GridSupervisorConfig, SubmitRefusal } from './core/supervisor-types.js';
import type { GridCatalogStore } from './catalog.js';
import { performClusterCall } from './cluster-calls.js';
import type { GridFence } from '../protocol/grid-fence.js';

// The grid coordinator's shell over its pure core (GridSupervisor,
// core/supervisor.ts): every decision — membership, leases, placement,
// rounds, recovery, walk-back, the end of a job — is the core's. The shell
// turns each gRPC request into a core input and waits for the core's reply
// to it; it performs the core's actions through one SerialDriver: the
// catalog written (and waited for) before anything is sent, then calls to
// clusters over gRPC (cluster-calls.ts), whose answers are inputs again.
// Clusters push their shares' states on their heartbeats (push, not poll).
// What it keeps that the core does not: the clusters' addresses, clients and
// store directories, and the jobs' unit specs (both in the catalog too).

export interface GridShellSettings {
  gridId: string;
  incarnation: bigint;
  /** The election revision this process leads with (grid-ha.md); 0 or absent without etcd. */
  leaderTerm?: bigint;
  /** Before anything leaves as this grid's: whether it may still decide (a leader whose lease may be gone may not). */
  mayDecide?: () => boolean;
  core: Omit<GridSupervisorConfig, 'gridId' | 'incarnation' | 'leaderTerm'>;
  rpcTimeoutMs: number;
}

export interface ClusterAddress {
  incarnation: bigint;
  address: string;
  storeDir: string;
  client: ClusterClient;
}

/** Where a step's events go (Watch, metrics, logs): see watch-events.ts. */
export type GridEventSink = (events: GridEvent[]) => void;

export class GridShell {
  readonly core: GridSupervisor;
  private readonly driver: SerialDriver<GridInput, GridPersist, GridSend, GridReply>;
  readonly clusters = new Map<string, ClusterAddress>();
  private readonly specs = new Map<string, JobSpec>();
  /** The restart policies submits named (absent: the default), in the catalog beside the specs. */
  private readonly policies = new Map<string, RestartPolicy>();
  /** Store directories by cluster id, as registrations (and the catalog) say. */
  private readonly stores = new Map<string, string>();
  private readonly waiters = new ReplyWaiters('the grid coordinator');
  /** Jobs whose submit the core has not answered yet. */
  private readonly submitting = new Set<string>();
  private reqs = 0;
  private stopped = false;
  /** Calls to clusters not answered yet. */
  private inFlight = 0;

  constructor(
    readonly settings: GridShellSettings,
    readonly runtime: TierRuntime,
    readonly log: Logger,
    private readonly sink: GridEventSink,
    readonly catalog: GridCatalogStore,
  ) {
    for (const [id, spec] of catalog.specs()) this.specs.set(id, spec);
    for (const [id, p] of catalog.policies()) this.policies.set(id, p);
    for (const [id, c] of catalog.clusters()) this.stores.set(id, c.storeDir);
    const agentLeases = new Map([...catalog.clusters()].map(([id, c]) => [id, c.agentLeaseMs]));
    this.core = new GridSupervisor({ ...settings.core, gridId: settings.gridId, incarnation: settings.incarnation, leaderTerm: settings.leaderTerm ?? 0n }, catalog.rows(), Math.floor(runtime.clock.nowMs()), agentLeases, catalog.forgotten());
    this.driver = new SerialDriver(this.core, {
      clock: runtime.clock,
      timers: runtime.timers,
      persist: (p, done) => {
        const line = p.lineOf ? { ...p.lineOf, unixMs: runtime.clock.wallMs() } : undefined;
        this.catalog.save(p.jobs, (id) => { const s = this.specs.get(id); return s ? storedSpecOf(s) : null; }, line, { forgotten: p.forgotten ?? {}, policyOf: (id) => this.policies.get(id) ?? null })
          .then(() => done(null), (err: unknown) => {
            this.log.error({ err: String(err) }, 'could not write the grid catalog');
            done(err instanceof Error ? err.message : String(err));
          });
      },
      persisted: (p) => (p.lineOf ? { kind: 'persisted', what: p } : null),
      persistFailed: (p, reason) => ({ kind: 'persistFailed', what: p, reason }),
      send: (s) => this.send(s),
      reply: (r) => this.reply(r),
      tick: () => ({ kind: 'tick' }),
      afterStep: () => {
        const events = this.core.drainEvents();
        for (const e of events) {
          if (e.kind !== 'jobForgotten') continue;
          this.specs.delete(e.jobId);
          this.policies.delete(e.jobId);
        }
        if (events.length > 0) this.sink(events);
      },
    });
    this.driver.input({ kind: 'tick' });
  }

  // ---- requests (the gRPC service's) ----

  async registerCluster(c: { clusterId: string; incarnation: bigint; address: string; storeDir: string; agentLeaseMs: number }): Promise<void> {
    const old = this.clusters.get(c.clusterId);
    if (old && old.incarnation > c.incarnation) throw new GridError('failed-precondition', `fenced: cluster ${c.clusterId} incarnation ${c.incarnation} is older than ${old.incarnation}`);
    // The address first: calls the core makes in the same step go to the new one.
    if (old?.address !== c.address) {
      old?.client.close();
      this.clusters.set(c.clusterId, { incarnation: c.incarnation, address: c.address, storeDir: c.storeDir, client: this.runtime.clients.clusterClient(c.address, this.settings.rpcTimeoutMs) });
    } else {
      this.clusters.set(c.clusterId, { ...old, incarnation: c.incarnation, storeDir: c.storeDir });
    }
    this.stores.set(c.clusterId, c.storeDir);
    // Its store is on disk before its units can be planned onto it (another cluster adopts from it if it is lost).
    await this.catalog.saveCluster(c.clusterId, { storeDir: c.storeDir, agentLeaseMs: c.agentLeaseMs });
    const reqId = this.nextReq();
    const a = await this.ask<{ ok: boolean; reason: string }>(`reg#${reqId}`, { kind: 'clusterRegistered', reqId, clusterId: c.clusterId, incarnation: c.incarnation, agentLeaseMs: c.agentLeaseMs });
    if (!a.ok) throw new GridError('failed-precondition', a.reason);
    this.log.info({ cluster: c.clusterId, incarnation: String(c.incarnation), address: c.address, store: c.storeDir }, 'cluster registered');
  }

  heartbeat(hb: Heartbeat): Promise<HeartbeatAnswer> {
    return this.ask<HeartbeatAnswer>(`beat#${hb.member}#${hb.seq}`, { kind: 'clusterHeartbeat', hb });
  }

  async submitJob(spec: JobSpec, defaultIntervalMs: number, restartPolicy: RestartPolicy | null = null): Promise<void> {
    if (spec.units.length === 0) throw new GridError('invalid-argument', `job ${spec.jobId} has no units`);
    // One submit of a job at a time: the spec the clusters get must be the one whose submit the core took.
    if (this.submitting.has(spec.jobId)) throw new GridError('already-exists', `a submit of job ${spec.jobId} is under way`);
    const before = this.specs.get(spec.jobId);
    const policyBefore = this.policies.get(spec.jobId);
    this.submitting.add(spec.jobId);
    this.specs.set(spec.jobId, spec);
    if (restartPolicy) this.policies.set(spec.jobId, restartPolicy);
    else this.policies.delete(spec.jobId);
    try {
      const reqId = this.nextReq();
      const a = await this.ask<{ ok: boolean; reason: string; code?: SubmitRefusal }>(`submit#${reqId}`, {
        kind: 'submit', reqId, jobId: spec.jobId, units: spec.units.map((u) => u.unitId), intervalMs: spec.checkpointIntervalMs || defaultIntervalMs,
      });
      if (!a.ok) {
        // Refused (the job runs already, no room for another): the job it names keeps its own spec.
        if (before) this.specs.set(spec.jobId, before);
        else this.specs.delete(spec.jobId);
        if (policyBefore) this.policies.set(spec.jobId, policyBefore);
        else this.policies.delete(spec.jobId);
        throw new GridError(a.code ?? 'failed-precondition', a.reason);
      }
      this.log.info({ jobId: spec.jobId, clusters: Object.fromEntries(this.core.jobView(spec.jobId)?.clusters ?? []), answer: a.reason }, 'grid job submitted');
    } finally {
      this.submitting.delete(spec.jobId);
    }
  }

  async checkpoint(jobId: string): Promise<Extract<CheckpointAnswer, { kind: 'committed' }>> {
    const reqId = this.nextReq();
    const a = await this.ask<CheckpointAnswer>(`cp#${reqId}`, { kind: 'checkpoint', reqId, jobId });
    if (a.kind === 'refused') throw new GridError(a.code, a.reason);
    return a;
  }

  /** Job control (core/supervisor-control.ts): answered once done. */
  async controlJob(jobId: string, action: JobAction, line: bigint | null): Promise<Extract<ControlAnswer, { kind: 'done' }>> {
    const reqId = this.nextReq();
    const a = await this.ask<ControlAnswer>(`ctl#${reqId}`, { kind: 'control', reqId, jobId, action, line });
    if (a.kind === 'refused') throw new GridError(a.code, a.reason);
    return a;
  }

  /** What this grid's calls and heartbeat answers carry (protocol/grid-fence.ts). */
  fence(): GridFence {
    return { term: this.settings.leaderTerm ?? 0n, incarnation: this.settings.incarnation };
  }

  storeOf(clusterId: string): string {
    return this.stores.get(clusterId) ?? '';
  }

  shutdown(): void {
    this.stopped = true;
    this.driver.stop();
    // Calls still in flight keep their channels until they end (a deposed leader's late call still goes out).
    if (this.inFlight === 0) this.closeClients();
    this.waiters.close();
  }

  private closeClients(): void {
    for (const c of this.clusters.values()) c.client.close();
  }

  // ---- the driver's ports ----

  private send(s: GridSend): void {
    const to = s.to;
    const reqId = s.call.reqId;
    // Who may decide (core/leadership.ts): nothing leaves as the leader's once its lease may be gone.
    if (this.settings.mayDecide && !this.settings.mayDecide()) {
      this.driver.input({ kind: 'clusterUnreachable', cluster: to, reqId, reason: 'not sent: this grid may no longer lead' });
      return;
    }
    const target = this.clusters.get(to);
    if (!target) {
      this.driver.input({ kind: 'clusterUnreachable', cluster: to, reqId, reason: `cluster ${to} has no address here` });
      return;
    }
    this.inFlight += 1;
    void performClusterCall({
      client: target.client,
      gridId: this.settings.gridId,
      spec: (id) => this.specs.get(id) ?? null,
      storeDir: (id) => this.stores.get(id) ?? null,
      policy: (id) => this.policies.get(id) ?? null,
    }, to, s.call).then((r) => {
      this.inFlight -= 1;
      if (this.stopped) {
        // A deposed leader's call answered after it stepped down (a held-back one, say): said, not acted on.
        if (r.kind === 'answer' && r.answer.kind === 'refused') this.log.warn({ cluster: to, call: s.call.req.kind, jobId: s.call.req.jobId, reason: r.answer.reason }, 'a call this grid sent as leader was refused');
        if (this.inFlight === 0) this.closeClients();
        return;
      }
      this.driver.input(r.kind === 'answer' ? { kind: 'clusterAnswer', cluster: to, reqId, answer: r.answer } : { kind: 'clusterUnreachable', cluster: to, reqId, reason: r.reason });
    });
  }

  private reply(r: GridReply): void {
    switch (r.kind) {
      case 'beat': return this.wake(`beat#${r.to}#${r.seq}`, r.answer);
      case 'registered': return this.wake(`reg#${r.reqId}`, { ok: r.ok, reason: r.reason });
      case 'submitted': return this.wake(`submit#${r.reqId}`, { ok: r.ok, reason: r.reason, ...(r.code ? { code: r.code } : {}) });
      case 'checkpointed': return this.wake(`cp#${r.reqId}`, r.answer);
      case 'controlled': return this.wake(`ctl#${r.reqId}`, r.answer);
    }
  }

  // ---- helpers ----

  private nextReq(): number {
    return ++this.reqs;
  }

  /** Feeds the input and resolves with the core's reply under key (rejects after a shutdown: unavailable). */
  private ask<A>(key: string, input: GridInput): Promise<A> {
    return this.waiters.ask<A>(key, () => this.driver.input(input));
  }

  private wake(key: string, answer: unknown): void {
    this.waiters.wake(key, answer);
  }
}
