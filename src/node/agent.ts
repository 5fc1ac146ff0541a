import { timingSafeEqual } from 'node:crypto';
import { GridError, notFound } from '../common/errors.js';
import { quoteValue } from '../common/names.js';
import { checkCommand, unitEnv } from './units/unit-env.js';
import { message, type JobShell } from './job-shell.js';
import { validateJobSpec, type JobSpec } from './job-spec.js';
import type { ContainerInfo, PageWriteOp } from './memory/page-memory.js';
import type { UnitInfo } from './units/unit-supervisor.js';
import { listCommitted, listJobs, removeIncomplete, stagedPartDigest } from '../store/index.js';
import type { RestoreResult, RestoreScope } from './restore-runner.js';
import { AgentWatch } from './agent-events.js';
import type { Fence } from '../wire/codec.js';
import { SerialDriver } from '../runtime/serial-driver.js';
import { NodeParticipant, LOCAL, type JobSummary, type ParticipantInput, type ParticipantReply, type ParticipantSend, type UnitOp } from './core/participant.js';
import type { AgentAnswer, AgentRequest } from '../protocol/messages.js';
import { performOp, type OpsTarget } from './agent-ops.js';
import { spawnUnits, killUnits, type SpawnTarget, type StartCtx } from './agent-spawn.js';
import type { CheckpointResult, CommitResult, PrepareResult } from './step-results.js';

export type { CheckpointResult, CommitResult, PrepareResult } from './step-results.js';
export type { Fence } from '../wire/codec.js';
export type { UnitIdentity, JobView, AgentStatus, AgentDeps, StartOptions, AgentJobState } from './agent-types.js';

import type { UnitIdentity, JobView, AgentStatus, AgentDeps, StartOptions, AgentJobState } from './agent-types.js';

// The node agent's shell around its pure core (core/participant.ts), which
// alone decides every job's lifecycle: starts, stops, restores, leases,
// fencing, epochs and checkpoint steps. The shell turns requests into core
// inputs and waits for the core's answers; it performs the core's unit ops
// (agent-ops.ts) one after another per job and feeds their results back; and
// it owns what a core cannot hold: page memory, the unit processes, their
// secrets and request gates, and the bytes in staging. One SerialDriver
// feeds the core (ARCHITECTURE §8).
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


/** Until a coordinator says how long its leases last. */
const DEFAULT_LEASE_MS = 1_000;


const SETTLED: ReadonlySet<string> = new Set(['completed', 'failed', 'stopped', 'fenced']);

export class NodeAgent {
  private readonly core: NodeParticipant;
  private readonly driver: SerialDriver<ParticipantInput, never, ParticipantSend, ParticipantReply>;
  private readonly shells = new Map<string, JobShell>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly waiting = new Map<number, (a: AgentAnswer) => void>();
  /** Shut down: the core takes no more inputs, and every request is refused unavailable. */
  private closed = false;
  private readonly starts = new Map<number, StartCtx>();
  private readonly seen = new Map<string, string>();
  /** Woken after the core's next step (see afterLeaseStep). */
  private stepWaiters: Array<() => void> = [];
  private readonly watch: AgentWatch;
  private readonly opsTarget: OpsTarget;
  private nextReq = 1;
  /** Starts are numbered in arrival order; a stop stops every start before it (the core's gens). */
  private gens = 0;
  private leaseMs = DEFAULT_LEASE_MS;
  /** The cluster link's view of the leases: it renews them from heartbeat answers. */
  readonly leases = {
    setLength: (ms: number): void => { this.leaseMs = ms; },
    renew: (jobIds: string[], sentAtMs: number): void => {
      this.driver.input({ kind: 'heartbeatAnswer', sentAtMs, answer: { known: true, leasedJobs: jobIds, leaseMs: this.leaseMs } });
    },
  };

  constructor(readonly deps: AgentDeps) {
    const { config, runtime } = deps;
    this.watch = new AgentWatch(deps.events, config.nodeId);
    this.core = new NodeParticipant({
      nodeId: config.nodeId, incarnation: deps.incarnation, capacityUnits: config.limits.maxUnitsPerJob * config.limits.maxJobs,
      heartbeatIntervalMs: 1_000, freezeTimeoutMs: 4 * config.freezeTimeoutMs, maxJobs: config.limits.maxJobs, defaultFullEvery: config.defaultFullEvery,
    });
    this.driver = new SerialDriver(this.core, {
      clock: runtime.clock,
      timers: runtime.timers,
      persist: (_p, done) => done(null), // the core persists nothing itself: parts are written by ops
      persistFailed: () => ({ kind: 'tick' }),
      send: (s) => this.onSend(s),
      reply: (r) => {
        const w = this.waiting.get(r.reqId);
        this.waiting.delete(r.reqId);
        w?.(r.answer);
      },
      tick: () => ({ kind: 'tick' }),
      afterStep: () => this.sync(),
    });
    const spawnTarget: SpawnTarget = {
      deps,
      startCtx: (reqId) => this.starts.get(reqId),
      setShell: (jobId, shell) => void this.shells.set(jobId, shell),
      input: (i) => this.driver.input(i),
      jobState: (jobId) => this.core.jobState(jobId),
    };
    this.opsTarget = {
      deps,
      shell: (jobId: string) => this.shells.get(jobId) ?? null,
      input: (i: ParticipantInput) => this.driver.input(i),
      spawn: (op: Extract<UnitOp, { op: 'spawn' }>) => spawnUnits(spawnTarget, op),
      kill: (jobId: string, graceful: boolean) => killUnits(spawnTarget, jobId, graceful),
      forget: (jobId: string) => {
        // Only if the core has not started the job anew since (its ops run in order, but a check costs nothing).
        if (this.core.jobState(jobId) !== null) return;
        if (deps.memory.hasJob(jobId)) deps.memory.dropJob(jobId);
        try {
          deps.supervisor.forgetJob(jobId);
        } catch (err) {
          deps.log.warn({ jobId, err: message(err) }, 'an ended job still has live units: its records are kept');
        }
        this.shells.delete(jobId);
        deps.log.info({ jobId }, 'forgot an ended job (its pages are freed)');
      },
      onLocalWritten: (jobId: string, epoch: bigint) => {
        const shell = this.shells.get(jobId);
        const written = shell?.written.get(epoch);
        const timing = shell?.timing.get(epoch);
        if (!written?.manifest || !timing) return;
        this.watch.checkpointed(jobId, written.manifest, timing.freezeWindowMs);
        this.deps.log.debug({ jobId, epoch: String(epoch), full: written.manifest.parentEpoch === null, freezeWindowMs: timing.freezeWindowMs }, 'epoch committed');
      },
      onStepFailed: (jobId: string, epoch: bigint, stage: string, err: unknown) => {
        this.deps.log.warn({ jobId, epoch: String(epoch), stage, err: message(err) }, 'checkpoint step failed');
      },
    };
    this.driver.input({ kind: 'tick' });
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

  // ---- requests to the core ----

  /** Feeds the core one input that it answers (by reqId), and waits for the answer. */
  private ask(make: (reqId: number) => ParticipantInput, ctx?: StartCtx): Promise<AgentAnswer> {
    if (this.closed) return Promise.resolve(this.closing());
    const reqId = this.nextReq++;
    if (ctx) this.starts.set(reqId, ctx);
    return new Promise<AgentAnswer>((resolve) => {
      this.waiting.set(reqId, resolve);
      this.driver.input(make(reqId));
    }).finally(() => this.starts.delete(reqId));
  }

  private call(from: string, incarnation: bigint, req: AgentRequest, ctx?: StartCtx, deadline?: number): Promise<AgentAnswer> {
    const { clock } = this.deps.runtime;
    // The caller's deadline (wall clock) on the core's clock.
    const deadlineMs = deadline === undefined ? undefined : Math.floor(clock.nowMs() + (deadline - clock.wallMs()));
    return this.ask((reqId) => ({ kind: 'call', call: { reqId, from, incarnation, req, ...(deadlineMs === undefined ? {} : { deadlineMs }) } }), ctx);
  }

  private summary(jobId: string): JobSummary {
    const s = this.core.summary(jobId);
    if (!s) throw notFound(`unknown job ${quoteValue(jobId)} on node ${this.deps.config.nodeId}`);
    return s;
  }

  // ---- jobs ----

  async startJob(raw: JobSpec, opts: StartOptions = {}): Promise<JobView> {
    const { config } = this.deps;
    const spec = validateJobSpec(raw, config.limits, config.defaultFullEvery);
    await checkCommands(spec);
    const existing = this.core.summary(spec.jobId);
    if (existing && (existing.state === 'running' || existing.state === 'starting')) {
      throw new GridError('already-exists', `job ${spec.jobId} is already ${this.stateOf(existing)} on ${config.nodeId}`);
    }
    const committed = opts.fresh ? [] : await listCommitted(config.storeDir, spec.jobId);
    if (committed.length > 0) {
      throw new GridError(
        'failed-precondition',
        `job ${spec.jobId} has ${committed.length} committed epochs in ${config.storeDir}: restore it instead of starting it anew`,
      );
    }
    const answer = await this.call(LOCAL, 0n, this.startRequest(spec, opts.leaseBound === true), { kind: 'start', spec }, opts.deadline);
    if (answer.kind === 'refused') this.watch.startRefused(spec.jobId, answer.reason);
    if (answer.kind !== 'ok') throw refusal(answer);
    this.deps.log.info({ jobId: spec.jobId, units: spec.units.length, leaseBound: opts.leaseBound === true }, 'job started');
    return this.jobView(spec.jobId);
  }

  private startRequest(spec: JobSpec, leaseBound: boolean): AgentRequest {
    return {
      kind: 'startJob', jobId: spec.jobId, units: spec.units.map((u) => u.unitId), sources: [], gen: ++this.gens,
      leaseMs: leaseBound ? this.leaseMs : null, intervalMs: spec.checkpointIntervalMs, fullEvery: spec.fullEvery,
    };
  }

  async stopJob(jobId: string): Promise<JobView> {
    this.summary(jobId);
    await this.call(LOCAL, 0n, { kind: 'stopJob', jobId, gen: this.gens + 1 });
    await this.chains.get(jobId); // the kill it asked for
    return this.jobView(jobId);
  }

  /** Stops the job's units if they run, then forgets it (job control's delete); its epochs stay in the store. */
  async deleteJob(jobId: string): Promise<JobView> {
    const before = this.jobView(jobId);
    const answer = await this.ask((reqId) => ({ kind: 'forgetJob', reqId, jobId }));
    if (answer.kind !== 'ok') throw refusal(answer);
    await this.chains.get(jobId); // the kill it asked for
    return { ...before, state: 'stopped', units: this.deps.supervisor.units(jobId) };
  }

  async waitJob(jobId: string, timeoutMs: number): Promise<{ job: JobView; done: boolean }> {
    const s = this.summary(jobId);
    const shell = this.shells.get(jobId);
    if (SETTLED.has(s.state) || !shell) return { job: this.jobView(jobId), done: SETTLED.has(s.state) };
    const { timers } = this.deps.runtime;
    const done = await new Promise<boolean>((resolve) => {
      const timer = timers.setTimer(() => resolve(false), timeoutMs);
      shell.exitWaiters.push(() => {
        timers.clearTimer(timer);
        resolve(true);
      });
    });
    return { job: this.jobView(jobId), done };
  }

  async checkpoint(jobId: string, full: boolean): Promise<CheckpointResult> {
    this.summary(jobId);
    const answer = await this.ask((reqId) => ({ kind: 'localCheckpoint', reqId, jobId, full }));
    if (answer.kind !== 'committed') throw refusal(answer);
    const shell = this.shells.get(jobId);
    const written = shell?.written.get(answer.epoch);
    const timing = shell?.timing.get(answer.epoch);
    if (!written?.manifest || !timing) throw new GridError('internal', `epoch ${answer.epoch} of job ${jobId} committed, but its record is gone`);
    return { manifest: written.manifest, chainLength: answer.chainLength, ...timing, writeMs: written.writeMs };
  }

  // ---- the participant side of a coordinated round ----

  async prepareCheckpoint(fence: Fence, jobId: string, parentEpoch: bigint | null, full: boolean, lastCommitted: bigint | null = null): Promise<PrepareResult> {
    this.summary(jobId);
    const answer = await this.call(coordinatorOf(fence), fence.incarnation, { kind: 'prepare', jobId, epoch: fence.epoch, parentEpoch, full, lastCommitted });
    if (answer.kind !== 'prepared') {
      const err = refusal(answer);
      this.watch.stepFailed(jobId, fence.epoch, 'prepare', err);
      throw err;
    }
    // After the thaw (the job's ops run in order): the digest's CRCs never lengthen the freeze window.
    await this.chains.get(jobId);
    const shell = this.shells.get(jobId);
    const snapshot = shell?.snapshots.get(fence.epoch);
    const digest = snapshot ? await stagedPartDigest({ epoch: fence.epoch, staging: snapshot.staging, pages: snapshot.entries }) : '';
    const timing = shell?.timing.get(fence.epoch);
    // A read-only vote: the write op recorded the (empty) part before the core answered, as for a COMMIT.
    const readOnly = answer.readOnly ? this.writtenPart(jobId, fence.epoch, 'prepare') : null;
    const r: PrepareResult = { epoch: fence.epoch, pages: answer.pages, bytes: answer.bytes, freezeWindowMs: timing?.freezeWindowMs ?? 0, digest, done: answer.done, readOnly };
    this.watch.prepared(jobId, r);
    // Its part is durable now, as after a COMMIT: a watcher sees the same prepared → durable steps either way.
    if (readOnly) this.watch.durable(jobId, readOnly, true);
    return r;
  }

  async commitCheckpoint(fence: Fence, jobId: string): Promise<CommitResult> {
    this.summary(jobId);
    const answer = await this.call(coordinatorOf(fence), fence.incarnation, { kind: 'commit', jobId, epoch: fence.epoch });
    if (answer.kind !== 'durable') {
      const err = refusal(answer);
      this.watch.stepFailed(jobId, fence.epoch, 'commit', err);
      throw err;
    }
    const r = this.writtenPart(jobId, fence.epoch, 'commit');
    this.watch.durable(jobId, r);
    return r;
  }

  /** The record of a part the core answered durable (by COMMIT, or with a read-only PREPARED). */
  private writtenPart(jobId: string, epoch: bigint, step: 'prepare' | 'commit'): CommitResult {
    const written = this.shells.get(jobId)?.written.get(epoch);
    if (!written) {
      const err = new GridError('internal', `part of epoch ${epoch} is durable, but its record is gone`);
      this.watch.stepFailed(jobId, epoch, step, err);
      throw err;
    }
    return { epoch, part: written.part, containers: written.containers, writeMs: written.writeMs };
  }

  /** Drops what that epoch staged or wrote (its pages count as changed again); a step still running ends refused. */
  async abortCheckpoint(fence: Fence, jobId: string, reason: string): Promise<boolean> {
    this.summary(jobId);
    const answer = await this.call(coordinatorOf(fence), fence.incarnation, { kind: 'abort', jobId, epoch: fence.epoch });
    if (answer.kind !== 'ok') throw refusal(answer);
    const dropped = answer.dropped === true;
    this.deps.log.info({ jobId, epoch: String(fence.epoch), reason, dropped }, 'round aborted by the coordinator');
    this.watch.aborted(jobId, fence.epoch, reason, dropped);
    return dropped;
  }

  async restore(jobId: string, epoch: bigint | null, scope: RestoreScope = {}, opts: StartOptions = {}): Promise<RestoreResult> {
    // Bad input is refused before anything running is stopped: a restore stops the job's units first, so
    // whatever would make it fail later (a bad spec, an epoch that is not there) must be found here.
    if (scope.spec) {
      const spec = validateJobSpec(scope.spec, this.deps.config.limits, this.deps.config.defaultFullEvery);
      if (spec.jobId !== jobId) throw new GridError('invalid-argument', `job.job_id ${quoteValue(spec.jobId)} is not job_id ${quoteValue(jobId)}: a restore runs the units of the job it restores`);
      await checkCommands(spec);
      scope = { ...scope, spec };
    }
    if (scope.sources && !scope.spec) throw new GridError('invalid-argument', `restoring job ${jobId} from several stores needs the units to run (job)`);
    await this.checkRestorable(jobId, epoch, scope);
    const known = this.core.summary(jobId)?.lastEpoch ?? null;
    if (known !== null) scope = { ...scope, known: [known] };
    this.watch.restoreStarted(jobId, epoch);
    const ctx: StartCtx = { kind: 'restore', jobId, epoch, scope };
    // The units to run are known once the epoch is read (its manifest's job): the core learns them from the spawn.
    const units = scope.spec?.units.map((u) => u.unitId) ?? [];
    const req: AgentRequest = { kind: 'startJob', jobId, units, sources: [], gen: ++this.gens, leaseMs: opts.leaseBound === true ? this.leaseMs : null };
    const answer = await this.call(LOCAL, 0n, req, ctx, opts.deadline);
    if (answer.kind === 'refused') this.watch.startRefused(jobId, answer.reason);
    if (answer.kind !== 'ok' || !ctx.result) {
      const err = ctx.error ?? (answer.kind === 'ok' ? new GridError('internal', 'restore answered without a result') : refusal(answer));
      this.watch.restoreFailed(jobId, err);
      throw err;
    }
    this.watch.restored(jobId, ctx.result);
    return { ...ctx.result, job: this.jobView(jobId) };
  }

  /**
   * The epochs a restore names are committed (NOT_FOUND otherwise), checked
   * before the job is touched. A damaged epoch is found only by the restore
   * itself (every page verified), which then says so; one that is missing
   * costs a running job nothing.
   */
  private async checkRestorable(jobId: string, epoch: bigint | null, scope: RestoreScope): Promise<void> {
    const wanted = scope.sources?.map((s) => ({ storeDir: s.storeDir, epoch: s.epoch as bigint | null })) ?? [{ storeDir: this.deps.config.storeDir, epoch }];
    for (const w of wanted) {
      const committed = await listCommitted(w.storeDir, jobId);
      const newest = committed.at(-1)?.epoch;
      if (newest === undefined) throw new GridError('not-found', `job ${jobId} has no committed epoch in ${w.storeDir}`, scope.sources ? { where: w.storeDir, epoch: w.epoch ?? 0n } : null);
      if (w.epoch !== null && !committed.some((m) => m.epoch === w.epoch)) {
        throw new GridError('not-found', `job ${jobId} has no committed epoch ${w.epoch} in ${w.storeDir} (newest is ${newest})`, scope.sources ? { where: w.storeDir, epoch: w.epoch } : null);
      }
    }
  }

  // ---- the core's ops ----

  private onSend(s: ParticipantSend): void {
    // The core's own heartbeats are not sent: the cluster link beats, carrying job-reports.ts's states.
    if (s.to === 'cluster') return;
    const op = s.unit;
    const before = this.chains.get(op.jobId) ?? Promise.resolve();
    const next = before.then(() => performOp(this.opsTarget, op)).catch((err: unknown) => {
      this.deps.log.error({ jobId: op.jobId, op: op.op, err: err instanceof Error ? err.stack : String(err) }, 'unit op failed unexpectedly');
    });
    this.chains.set(op.jobId, next);
    void next.then(() => {
      if (this.chains.get(op.jobId) === next) this.chains.delete(op.jobId);
    });
  }



  /** Called by the supervisor whenever a unit process exits. */
  onUnitExit(info: UnitInfo): void {
    this.deps.log.info({ jobId: info.jobId, unitId: info.unitId, code: info.exitCode, signal: info.signal }, 'unit exited');
    this.deps.metrics.unitExited(info.exitCode === 0);
    const units = this.deps.supervisor.units(info.jobId);
    if (units.some((u) => u.state !== 'exited')) {
      // A unit that fails while others run fails the job now, not when the last one ends (which may be never:
      // a killed unit left its job "running" with nothing to restart it). The core stops the others.
      if (info.exitCode === 0) return;
      const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.exitCode}`;
      this.driver.input({ kind: 'unitsExited', jobId: info.jobId, ok: false, reason: `unit ${info.unitId} ${how}`, live: true });
      return;
    }
    const ok = units.every((u) => u.exitCode === 0);
    this.driver.input({ kind: 'unitsExited', jobId: info.jobId, ok, reason: `every unit exited (${units.map((u) => `${u.unitId}: ${u.signal ?? `code ${u.exitCode}`}`).join(', ')})` });
  }

  /** After every core step: state changes become events, log lines and woken waiters. */
  private sync(): void {
    // Woken in a microtask: by then this step's ops are queued (the driver delivers them after this hook).
    const woken = this.stepWaiters;
    this.stepWaiters = [];
    for (const w of woken) w();
    for (const jobId of this.core.jobIds()) {
      // Every step comes here: its state alone says whether there is anything to tell (no summary is built).
      const state = this.core.jobState(jobId)!;
      const from = this.seen.get(jobId) ?? '';
      // A start is told when its units run (from the state before it), not while they spawn.
      if (from === state || state === 'starting') continue;
      const s = this.core.summary(jobId)!;
      this.seen.set(jobId, s.state);
      // An ended job's unit secrets stop working once its units are gone (the kill this step asked for has run),
      // not when the job is forgotten: a token read from a dead unit's environment must not reach the job's pages.
      // Not before: a unit refused mid-stop would end on its own error, and its end be taken for the job's. The
      // shell of this start is the one cleared; a restart has its own.
      if (SETTLED.has(s.state)) {
        const shell = this.shells.get(jobId);
        void Promise.resolve().then(() => this.chains.get(jobId)).then(() => shell?.tokens.clear());
      }
      const tell = (): void => {
        this.watch.job(jobId, from, this.stateOf(s), s.lastError || `units ${s.state}`);
        if (SETTLED.has(s.state)) for (const w of this.shells.get(jobId)?.exitWaiters.splice(0) ?? []) w();
      };
      if (s.state === 'fenced') {
        this.deps.log.warn({ jobId }, 'job lease lapsed: killing its units');
        this.deps.metrics.leaseLapsed();
      }
      // Stopped or fenced is told once the units are gone (the kill is this step's op, queued after this
      // hook): a reader that hears it finds them exited.
      if (s.state === 'stopped' || s.state === 'fenced') void Promise.resolve().then(() => this.chains.get(jobId)).then(tell);
      else tell();
    }
    for (const jobId of this.seen.keys()) { // deleting the entry being visited is safe in a Map's iteration
      if (this.core.jobState(jobId) !== null) continue;
      this.seen.delete(jobId);
      this.shells.delete(jobId);
    }
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
      jobs: this.core.jobIds().filter((id) => this.shells.has(id)).map((id) => this.jobView(id)),
    };
  }

  jobView(jobId: string): JobView {
    const s = this.summary(jobId);
    const shell = this.shells.get(jobId);
    const memory = this.deps.memory;
    return {
      spec: shell?.spec ?? { jobId, units: [], checkpointIntervalMs: 0, fullEvery: 1 },
      state: this.stateOf(s),
      units: this.deps.supervisor.units(jobId),
      lastEpoch: s.lastEpoch,
      containers: memory.hasJob(jobId) ? memory.containers(jobId) : [],
      committed: s.committed,
      failed: s.failed,
      lastError: s.lastError,
    };
  }

  private stateOf(s: JobSummary): AgentJobState {
    if (s.state !== 'starting') return s.state;
    return [...this.starts.values()].some((c) => c.kind === 'restore' && c.jobId === s.jobId) ? 'restoring' : 'running';
  }

  /** Every job's state, cheaply: the cluster link reports them on each heartbeat. */
  jobStates(): Array<{ jobId: string; state: AgentJobState; lastError: string }> {
    return this.core.jobIds().filter((id) => this.shells.has(id)).map((id) => {
      const s = this.summary(id);
      return { jobId: id, state: this.stateOf(s), lastError: s.lastError };
    });
  }

  private closing(): AgentAnswer {
    return { kind: 'refused', reason: `node ${this.deps.config.nodeId} is shutting down`, code: 'unavailable' };
  }

  async shutdown(): Promise<void> {
    await Promise.all([...this.chains.values()]);
    this.driver.stop();
    // Calls the core will never answer now (waiting, or arriving from here on) are answered here: a caller
    // waiting on one would hold the gRPC server's graceful shutdown until its deadline (seen: 20 s per agent).
    this.closed = true;
    for (const [reqId, w] of [...this.waiting]) {
      this.waiting.delete(reqId);
      w(this.closing());
    }
    await this.deps.supervisor.shutdown();
  }

  // ---- the unit API ----

  openContainer(id: UnitIdentity, name: string, pageCount: number, create: boolean): Promise<{ info: ContainerInfo; created: boolean }> {
    const job = this.authUnit(id);
    const { memory } = this.deps;
    if (this.leaseLapsed(id.jobId)) return this.afterLeaseStep(id.jobId).then(() => this.openContainer(id, name, pageCount, create));
    return job.gate.run(() => {
      if (create && !memory.hasContainer(id.jobId, name)) {
        const info = memory.createContainer(id.jobId, name, pageCount);
        this.watch.containerCreated(id.jobId, id.unitId, info.name, info.pageCount);
        return { info, created: true };
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
    if (this.leaseLapsed(id.jobId)) return this.afterLeaseStep(id.jobId).then(() => this.applyBatch(id, writes));
    return job.gate.run(() => {
      this.deps.memory.applyBatch(id.jobId, writes);
      return writes.length;
    });
  }

  /**
   * A lease-bound job whose lease ran out changes no page, even before the
   * core's lease timer has fenced it (an agent that wakes from a pause may
   * serve a request first): its coordinator may run the units elsewhere.
   * The request waits for the core's next step, which either fences the
   * job (the request is then refused once the units are killed: a unit that
   * got an error at once might end on its own, and its end would be taken
   * for the job's) or renews the lease from a heartbeat answer that was
   * queued behind it (the request is then served).
   */
  private leaseLapsed(jobId: string): boolean {
    // The core's time, as the driver gives it (whole ms): a step at this instant fences what this finds lapsed.
    return this.core.leaseLapsed(jobId, Math.floor(this.deps.runtime.clock.nowMs()));
  }

  private async afterLeaseStep(jobId: string): Promise<void> {
    do {
      await new Promise<void>((resolve) => {
        this.stepWaiters.push(resolve);
        this.driver.input({ kind: 'tick' }); // the fence is due: step it now
      });
    } while (this.core.jobState(jobId) === 'running' && this.leaseLapsed(jobId));
    if (this.core.jobState(jobId) === 'running') return; // renewed meanwhile
    await this.chains.get(jobId); // the kill
    throw new GridError('failed-precondition', `the lease of job ${jobId} on ${this.deps.config.nodeId} lapsed: its units are fenced`);
  }

  readContainer(jobId: string, container: string, firstPage: number, count: number): Uint8Array {
    this.summary(jobId);
    const max = this.deps.config.limits.maxReadPages;
    if (count < 1 || count > max) {
      throw new GridError('invalid-argument', `page count ${count} out of range: read 1 to ${max} pages at a time`);
    }
    return this.deps.memory.readPages(jobId, container, firstPage, count);
  }

  /**
   * Checks a unit's identity; the lifeline (Attach) uses it too. A token is
   * bound to one unit of one job, and every container a call names is looked
   * up in that job alone: a unit reaches only its own job's containers. A
   * job or unit that is not there is refused like a wrong token, so that a
   * unit cannot probe which other jobs run here.
   */
  authUnit(id: UnitIdentity): JobShell {
    const job = this.shells.get(id.jobId);
    const token = job?.tokens.get(id.unitId);
    if (!job || token === undefined || !sameToken(token, id.token)) {
      // One answer for an unknown unit and a wrong token: a unit learns nothing of other jobs.
      throw new GridError('permission-denied', `the token is not that of unit ${quoteValue(id.unitId)} of job ${quoteValue(id.jobId)}`);
    }
    return job;
  }
}

/** In constant time: a unit must not learn a token byte by byte from how fast it is refused. */
function sameToken(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Every unit's command can be executed here (unit-env.ts), before any unit starts. */
async function checkCommands(spec: JobSpec): Promise<void> {
  for (const [i, u] of spec.units.entries()) await checkCommand(`units[${i}].command (unit ${u.unitId})`, u.command, unitEnv(u.env, {}).PATH!);
}

/** A coordinator names itself by its cluster and node; its incarnation fences it (P3). */
function coordinatorOf(fence: Fence): string {
  return `${fence.clusterId}/${fence.nodeId}`;
}

function refusal(a: AgentAnswer): GridError {
  if (a.kind === 'refused') return new GridError(a.code ?? 'aborted', a.reason);
  return new GridError('internal', `unexpected answer ${a.kind}`);
}
