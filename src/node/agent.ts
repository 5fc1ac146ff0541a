import { randomBytes } from 'node:crypto';
import { GridError, notFound } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { AgentConfig } from './config.js';
import { newJobRecord, type JobRecord } from './job-record.js';
import { validateJobSpec, type JobSpec } from './job-spec.js';
import type { PageMemory, PageWriteOp, ContainerInfo, MemoryStats } from './memory/page-memory.js';
import type { UnitSupervisor, UnitInfo } from './units/unit-supervisor.js';
import type { Freezer } from './units/freezer.js';
import { listCommitted, listJobs, removeIncomplete } from '../store/index.js';
import { runCheckpoint, type CheckpointResult } from './checkpoint-runner.js';
import { runRestore, type RestoreResult, type RestoreScope } from './restore-runner.js';
import type { AgentMetricsSink } from './metrics-sink.js';
import { AgentWatch, type EventSink } from './agent-events.js';
import { LeaseKeeper } from '../detector/lease-keeper.js';
import type { TierRuntime } from '../wire/clients.js';
import { repeat } from '../runtime/timers.js';
import {
  prepareParticipant, commitParticipant, abortParticipant, type Fence, type PrepareResult, type CommitResult,
} from './participant-runner.js';

// The node agent's shell: it owns the page memory, the unit supervisor and
// the job table, authenticates unit requests, routes them through each job's
// checkpoint gate, and runs checkpoints and restores one at a time per job.
// Incomplete epochs: under a cluster (config.ownsStore false) it never removes
// any, at start or later. The store is shared, and an epoch without a manifest
// may be the round other agents are writing right now, whose manifest the
// coordinator may rename in at any moment (agents that swept at start deleted
// such an epoch, once just after it committed). Only the committer knows which
// epochs can no longer commit, so only it sweeps (src/cluster/epoch-sweeper.ts).
// Deleting just this node's own parts would not be safe either: a part it
// wrote before a crash may be in an epoch that is about to commit. An agent
// without a cluster is the only writer and committer of its store, and sweeps
// it at start, before it takes any request.

export interface UnitIdentity {
  jobId: string;
  unitId: string;
  token: string;
}

export interface JobView {
  spec: JobSpec;
  state: JobRecord['state'];
  units: UnitInfo[];
  lastEpoch: bigint | null;
  containers: ContainerInfo[];
  committed: number;
  failed: number;
  lastError: string;
}

export interface AgentStatus {
  nodeId: string;
  incarnation: bigint;
  freezer: Freezer['kind'];
  freezerDetail: string;
  memory: MemoryStats;
  jobs: JobView[];
}

export interface AgentDeps {
  config: AgentConfig;
  /** Clock and timers for the agent, its leases and its checkpoint and restore runners. */
  runtime: TierRuntime;
  incarnation: bigint;
  memory: PageMemory;
  supervisor: UnitSupervisor;
  freezer: Freezer;
  log: Logger;
  metrics: AgentMetricsSink;
  /** Watch readers' hub; none in tests that need no events. */
  events?: EventSink;
}

/** How a coordinator starts a job here (see StartJobRequest). */
export interface StartOptions {
  leaseBound?: boolean;
  fresh?: boolean;
}

/** Until a coordinator says how long its leases last. */
const DEFAULT_LEASE_MS = 1_000;

export class NodeAgent {
  private readonly jobs = new Map<string, JobRecord>();
  /** Leases of coordinator-started jobs; renewed by the cluster link. */
  readonly leases: LeaseKeeper;
  private readonly watch: AgentWatch;

  constructor(readonly deps: AgentDeps) {
    this.watch = new AgentWatch(deps.events, deps.config.nodeId);
    this.leases = new LeaseKeeper(DEFAULT_LEASE_MS, (jobId) => void this.fenceJob(jobId), deps.runtime);
  }

  /** Removes half-written epochs of its own store that a crash left (see the header: only without a cluster). */
  async sweepOwnStore(): Promise<void> {
    if (!this.deps.config.ownsStore) return;
    for (const jobId of await listJobs(this.deps.config.storeDir)) {
      const removed = await removeIncomplete(this.deps.config.storeDir, jobId);
      if (removed.length > 0) {
        this.deps.log.warn({ jobId, epochs: removed.map(String) }, 'removed incomplete epochs left by a crash');
      }
    }
  }

  // ---- jobs ----

  async startJob(raw: JobSpec, opts: StartOptions = {}): Promise<JobView> {
    const { config } = this.deps;
    const spec = validateJobSpec(raw, config.limits, config.defaultFullEvery);
    const existing = this.jobs.get(spec.jobId);
    if (existing && (existing.state === 'running' || existing.state === 'restoring')) {
      throw new GridError('already-exists', `job ${spec.jobId} is already ${existing.state} on ${config.nodeId}`);
    }
    const committed = opts.fresh ? [] : await listCommitted(config.storeDir, spec.jobId);
    if (committed.length > 0) {
      throw new GridError(
        'failed-precondition',
        `job ${spec.jobId} has ${committed.length} committed epochs in ${config.storeDir}: restore it instead of starting it anew`,
      );
    }
    if (!existing && this.jobs.size >= config.limits.maxJobs) {
      throw new GridError('resource-exhausted', `node ${config.nodeId} already runs ${this.jobs.size} jobs (limit ${config.limits.maxJobs})`);
    }
    if (existing) this.deps.memory.dropJob(spec.jobId);
    const job = newJobRecord(spec, config.limits.maxGatedRequests);
    this.jobs.set(spec.jobId, job);
    this.bindLease(spec.jobId, opts.leaseBound === true);
    await this.startUnits(job, null);
    this.armTimer(job);
    this.deps.log.info({ jobId: spec.jobId, units: spec.units.length, leaseBound: opts.leaseBound === true }, 'job started');
    this.watch.job(spec.jobId, existing?.state ?? '', 'running', `started ${spec.units.length} units${opts.fresh ? ' anew' : ''}`);
    return this.view(job);
  }

  async stopJob(jobId: string): Promise<JobView> {
    const job = this.job(jobId);
    this.leases.unbind(jobId);
    this.disarmTimer(job);
    await job.checkpointInFlight?.catch(() => undefined);
    const from = job.state;
    if (job.state === 'running') job.state = 'stopped';
    await this.deps.supervisor.stopJob(jobId, this.deps.config.stopGraceMs);
    this.watch.job(jobId, from, job.state, 'units stopped');
    return this.view(job);
  }

  async waitJob(jobId: string, timeoutMs: number): Promise<{ job: JobView; done: boolean }> {
    const job = this.job(jobId);
    if (this.isSettled(job)) return { job: this.view(job), done: true };
    const { timers } = this.deps.runtime;
    const done = await new Promise<boolean>((resolve) => {
      const timer = timers.setTimer(() => resolve(false), timeoutMs);
      job.exitWaiters.push(() => {
        timers.clearTimer(timer);
        resolve(true);
      });
    });
    return { job: this.view(job), done };
  }

  checkpoint(jobId: string, full: boolean): Promise<CheckpointResult> {
    const job = this.job(jobId);
    if (job.state !== 'running' && job.state !== 'completed' && job.state !== 'failed') {
      return Promise.reject(new GridError('failed-precondition', `job ${jobId} is ${job.state}; nothing to checkpoint`));
    }
    return this.exclusive(job, () => runCheckpoint(this.deps, job, full)).then((r) => {
      this.watch.checkpointed(jobId, r);
      return r;
    });
  }

  // ---- the participant side of a coordinated round ----

  prepareCheckpoint(fence: Fence, jobId: string, parentEpoch: bigint | null, full: boolean): Promise<PrepareResult> {
    const job = this.job(jobId);
    const refused = this.notCheckpointable(job);
    if (refused) return Promise.reject(refused);
    return this.exclusive(job, () => prepareParticipant(this.deps, job, fence, parentEpoch, full)).then(
      (r) => (this.watch.prepared(jobId, r), r),
      (err: unknown) => { this.watch.stepFailed(jobId, fence.epoch, 'prepare', err); throw err; },
    );
  }

  commitCheckpoint(fence: Fence, jobId: string): Promise<CommitResult> {
    const job = this.job(jobId);
    const refused = this.notCheckpointable(job);
    if (refused) return Promise.reject(refused);
    return this.exclusive(job, () => commitParticipant(this.deps, job, fence)).then(
      (r) => (this.watch.durable(jobId, r), r),
      (err: unknown) => { this.watch.stepFailed(jobId, fence.epoch, 'commit', err); throw err; },
    );
  }

  /** A fenced, stopped or restoring job holds no state worth a part: an empty part would be a wrong epoch. */
  private notCheckpointable(job: JobRecord): GridError | null {
    if (job.state === 'running' || job.state === 'completed' || job.state === 'failed') return null;
    return new GridError('failed-precondition', `job ${job.spec.jobId} is ${job.state} on ${this.deps.config.nodeId}; it takes part in no round`);
  }

  /** Waits for a prepare or commit in flight, then drops what that epoch staged or wrote. */
  async abortCheckpoint(fence: Fence, jobId: string, reason: string): Promise<boolean> {
    const job = this.job(jobId);
    await job.checkpointInFlight?.catch(() => undefined);
    const dropped = abortParticipant(this.deps, job, fence);
    this.deps.log.info({ jobId, epoch: String(fence.epoch), reason, dropped }, 'round aborted by the coordinator');
    this.watch.aborted(jobId, fence.epoch, reason, dropped);
    return dropped;
  }

  /** One checkpoint step of a job at a time; a second one is refused, not queued. */
  private exclusive<T>(job: JobRecord, step: () => Promise<T>): Promise<T> {
    if (job.checkpointInFlight) {
      return Promise.reject(new GridError('aborted', `a checkpoint step of job ${job.spec.jobId} is already in progress`));
    }
    const run = step().finally(() => {
      job.checkpointInFlight = null;
    });
    job.checkpointInFlight = run;
    return run;
  }

  async restore(jobId: string, epoch: bigint | null, scope: RestoreScope = {}, opts: StartOptions = {}): Promise<RestoreResult> {
    // Bad input is refused before anything running is stopped.
    if (scope.spec) scope = { ...scope, spec: validateJobSpec(scope.spec, this.deps.config.limits, this.deps.config.defaultFullEvery) };
    if (scope.sources && !scope.spec) throw new GridError('invalid-argument', `restoring job ${jobId} from several stores needs the units to run (job)`);
    const existing = this.jobs.get(jobId);
    this.leases.unbind(jobId);
    this.watch.restoreStarted(jobId, epoch);
    if (existing) {
      this.disarmTimer(existing);
      existing.state = 'restoring';
      await existing.checkpointInFlight?.catch(() => undefined);
      await this.deps.supervisor.stopJob(jobId, this.deps.config.stopGraceMs);
    }
    let result: RestoreResult;
    try {
      const known = existing?.parentEpoch ?? null;
      result = await runRestore(this.deps, jobId, epoch, known === null ? scope : { ...scope, known: [known] });
    } catch (err) {
      // Nothing was loaded; the units stay stopped, and the job says why.
      if (existing) {
        existing.state = 'stopped';
        existing.lastError = `restore failed: ${err instanceof Error ? err.message : String(err)}`;
      }
      this.watch.restoreFailed(jobId, err);
      throw err;
    }
    const job = newJobRecord(result.spec, this.deps.config.limits.maxGatedRequests);
    job.parentEpoch = result.manifest.epoch;
    job.highestEpoch = result.highestEpoch;
    job.epochsSinceFull = result.chainLength - 1;
    if (existing) {
      job.committed = existing.committed;
      job.failed = existing.failed;
    }
    this.jobs.set(jobId, job);
    this.bindLease(jobId, opts.leaseBound === true);
    await this.startUnits(job, result.manifest.epoch);
    this.armTimer(job);
    this.watch.restored(jobId, result);
    return { ...result, job: this.view(job) };
  }

  /**
   * The job's lease lapsed: its coordinator may already be running these
   * units elsewhere, so they die now (no grace), and the job's pages go.
   */
  async fenceJob(jobId: string): Promise<void> {
    const job = this.jobs.get(jobId);
    if (!job) return;
    this.leases.unbind(jobId);
    this.disarmTimer(job);
    const from = job.state;
    job.state = 'fenced';
    job.lastError = `lease lapsed: the coordinator stopped renewing job ${jobId} here, so its units were killed`;
    this.deps.log.warn({ jobId }, 'job lease lapsed: killing its units');
    this.watch.job(jobId, from, 'fenced', job.lastError);
    this.deps.metrics.leaseLapsed();
    await this.deps.supervisor.stopJob(jobId, 0).catch((err: unknown) => this.deps.log.error({ jobId, err: String(err) }, 'killing fenced units failed'));
    await job.checkpointInFlight?.catch(() => undefined);
    if (job.state === 'fenced' && this.deps.memory.jobs().includes(jobId)) this.deps.memory.dropJob(jobId);
    for (const w of job.exitWaiters.splice(0)) w();
  }

  private bindLease(jobId: string, bound: boolean): void {
    if (bound) this.leases.bind(jobId);
    else this.leases.unbind(jobId);
  }

  async listEpochs(jobId: string) {
    return listCommitted(this.deps.config.storeDir, jobId);
  }

  status(): AgentStatus {
    return {
      nodeId: this.deps.config.nodeId,
      incarnation: this.deps.incarnation,
      freezer: this.deps.freezer.kind,
      freezerDetail: this.deps.freezer.detail,
      memory: this.deps.memory.stats(),
      jobs: [...this.jobs.values()].map((j) => this.view(j)),
    };
  }

  jobView(jobId: string): JobView {
    return this.view(this.job(jobId));
  }

  /** Every job's state, cheaply: the cluster link reports them on each heartbeat. */
  jobStates(): Array<{ jobId: string; state: JobRecord['state']; lastError: string }> {
    return [...this.jobs.values()].map((j) => ({ jobId: j.spec.jobId, state: j.state, lastError: j.lastError }));
  }

  async shutdown(): Promise<void> {
    this.leases.stop();
    for (const job of this.jobs.values()) this.disarmTimer(job);
    await Promise.all([...this.jobs.values()].map((j) => j.checkpointInFlight?.catch(() => undefined)));
    await this.deps.supervisor.shutdown();
  }

  // ---- the unit API ----

  openContainer(id: UnitIdentity, name: string, pageCount: number, create: boolean) {
    const job = this.authUnit(id);
    const { memory } = this.deps;
    return job.gate.run(() => {
      if (create && !memory.hasContainer(id.jobId, name)) {
        return { info: memory.createContainer(id.jobId, name, pageCount), created: true };
      }
      return { info: memory.openContainer(id.jobId, name, pageCount || undefined), created: false };
    });
  }

  read(id: UnitIdentity, container: string, page: number, offset: number, length: number) {
    const job = this.authUnit(id);
    return job.gate.run(() => this.deps.memory.read(id.jobId, container, page, offset, length));
  }

  applyBatch(id: UnitIdentity, writes: PageWriteOp[]): Promise<number> {
    const job = this.authUnit(id);
    return job.gate.run(() => {
      this.deps.memory.applyBatch(id.jobId, writes);
      return writes.length;
    });
  }

  readContainer(jobId: string, container: string, firstPage: number, count: number): Uint8Array {
    this.job(jobId);
    const max = this.deps.config.limits.maxReadPages;
    if (count < 1 || count > max) {
      throw new GridError('invalid-argument', `page count ${count} out of range: read 1 to ${max} pages at a time`);
    }
    return this.deps.memory.readPages(jobId, container, firstPage, count);
  }

  /** Checks a unit's identity; the lifeline (Attach) uses it too. */
  authUnit(id: UnitIdentity): JobRecord {
    const job = this.jobs.get(id.jobId);
    const token = job?.tokens.get(id.unitId);
    if (!job || token === undefined) throw notFound(`unknown unit ${JSON.stringify(id.unitId)} of job ${JSON.stringify(id.jobId)}`);
    if (token !== id.token) throw new GridError('permission-denied', `wrong token for unit ${id.unitId} of job ${id.jobId}`);
    return job;
  }

  // ---- internals ----

  private job(jobId: string): JobRecord {
    const job = this.jobs.get(jobId);
    if (!job) throw notFound(`unknown job ${JSON.stringify(jobId)} on node ${this.deps.config.nodeId}`);
    return job;
  }

  private async startUnits(job: JobRecord, restoredEpoch: bigint | null): Promise<void> {
    const { config, supervisor } = this.deps;
    for (const unit of job.spec.units) {
      const token = randomBytes(16).toString('hex');
      job.tokens.set(unit.unitId, token);
      const env: Record<string, string> = {
        GRIDCKPT_SOCKET: config.unitSocket,
        GRIDCKPT_NODE_ID: config.nodeId,
        GRIDCKPT_JOB_ID: job.spec.jobId,
        GRIDCKPT_UNIT_ID: unit.unitId,
        GRIDCKPT_UNIT_TOKEN: token,
      };
      if (restoredEpoch !== null) env['GRIDCKPT_RESTORED_EPOCH'] = restoredEpoch.toString();
      await supervisor.start(job.spec.jobId, unit, env);
    }
    job.state = 'running';
  }

  /** Called by the supervisor whenever a unit process exits. */
  onUnitExit(info: UnitInfo): void {
    const job = this.jobs.get(info.jobId);
    this.deps.log.info({ jobId: info.jobId, unitId: info.unitId, code: info.exitCode, signal: info.signal }, 'unit exited');
    this.deps.metrics.unitExited(info.exitCode === 0);
    if (!job || job.state === 'restoring') return;
    const units = this.deps.supervisor.units(info.jobId);
    if (units.some((u) => u.state !== 'exited')) return;
    const from = job.state;
    if (job.state === 'running') job.state = units.every((u) => u.exitCode === 0) ? 'completed' : 'failed';
    this.watch.job(info.jobId, from, job.state, `every unit exited (${units.map((u) => `${u.unitId}: ${u.signal ?? `code ${u.exitCode}`}`).join(', ')})`);
    this.leases.unbind(info.jobId);
    this.disarmTimer(job);
    const waiters = job.exitWaiters.splice(0);
    for (const w of waiters) w();
  }

  private isSettled(job: JobRecord): boolean {
    return job.state === 'completed' || job.state === 'failed' || job.state === 'stopped' || job.state === 'fenced';
  }

  private armTimer(job: JobRecord): void {
    const every = job.spec.checkpointIntervalMs;
    if (every === 0) return;
    job.timer = repeat(this.deps.runtime.timers, every, () => {
      if (job.state !== 'running' || job.checkpointInFlight) return;
      this.checkpoint(job.spec.jobId, false).catch((err: unknown) => {
        this.deps.log.warn({ jobId: job.spec.jobId, err: String(err) }, 'periodic checkpoint failed');
      });
    });
  }

  private disarmTimer(job: JobRecord): void {
    job.timer?.stop();
    job.timer = null;
  }

  private view(job: JobRecord): JobView {
    const memory = this.deps.memory;
    return {
      spec: job.spec,
      state: job.state,
      units: this.deps.supervisor.units(job.spec.jobId),
      lastEpoch: job.parentEpoch,
      containers: memory.jobs().includes(job.spec.jobId) ? memory.containers(job.spec.jobId) : [],
      committed: job.committed,
      failed: job.failed,
      lastError: job.lastError,
    };
  }
}
