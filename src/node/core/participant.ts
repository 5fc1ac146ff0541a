import type { AgentAnswer, AgentCall, Heartbeat, HeartbeatAnswer, MemberJobState, PartRef, RestoreSource } from '../../protocol/messages.js';

// The node agent's job supervisor as a pure core: the checkpoint participant
// (prepare, snapshot, commit, abort), job start/stop/restore, leases and
// fencing, and the heartbeat that carries the agent's job states upward.
//
// Intuition: the agent does what its cluster says, but never longer than its
// lease: every job it runs is bound to a lease the cluster renews by naming
// the job in heartbeat answers, counted from the heartbeat's send. When a
// lease runs out the agent kills the job's units at once (fenced), so a
// cluster that lost touch can run them elsewhere after the lease. A round
// freezes the units, snapshots into staging, thaws, answers PREPARED; COMMIT
// makes the staged part durable (persist) before answering DURABLE.
// Effects on the units (spawn, kill, freeze, snapshot, thaw) are sends to the
// local `units` port; their results come back as inputs.
//
// Invariants (checkInvariants; tests cite them as P1..P6):
//  P1. Always thaw: a job is frozen only while a snapshot for the epoch
//      being prepared is in progress, and at most freezeTimeoutMs; an abort,
//      a stop, a fence or the timeout thaws it in the same step.
//  P2. Epochs only grow: a PREPARE for an epoch not above the highest this
//      job prepared is refused; a staged snapshot is for the highest one.
//  P3. Fencing: a call from an older cluster incarnation than one seen is
//      refused before anything else.
//  P4. A lease-bound job whose lease ran out is fenced in that step: its
//      units are killed and it takes part in no round.
//  P5. A job that is neither running nor completed holds no staged
//      snapshot and is not frozen.
//  P6. Bounded: at most maxJobs jobs, and stops remembered for at most
//      4 x maxJobs jobs.

export interface ParticipantConfig {
  nodeId: string;
  incarnation: bigint;
  capacityUnits: number;
  heartbeatIntervalMs: number;
  freezeTimeoutMs: number;
  maxJobs: number;
  /** Deliberately broken variants, for the simulator's mutants only. */
  mutants?: ReadonlySet<string>;
}

export type ParticipantInput =
  | { kind: 'call'; call: AgentCall }
  | { kind: 'heartbeatAnswer'; sentAtMs: number; answer: HeartbeatAnswer }
  | { kind: 'spawned'; jobId: string; reqId: number; corrupt: { store: string; epoch: bigint; reason: string } | null }
  | { kind: 'snapshotTaken'; jobId: string; epoch: bigint; pages: number; bytes: number }
  | { kind: 'unitsExited'; jobId: string; ok: boolean; reason: string }
  | { kind: 'partFailed'; jobId: string; epoch: bigint; reqId: number; to: string; reason: string }
  | { kind: 'tick' };

export type UnitOp =
  | { op: 'spawn'; jobId: string; units: string[]; sources: RestoreSource[]; reqId: number }
  | { op: 'kill'; jobId: string }
  | { op: 'freeze'; jobId: string }
  | { op: 'snapshot'; jobId: string; epoch: bigint; full: boolean; parentEpoch: bigint | null }
  | { op: 'thaw'; jobId: string }
  | { op: 'dropStaging'; jobId: string };

export type ParticipantSend =
  | { to: 'units'; unit: UnitOp }
  | { to: 'cluster'; heartbeat: Heartbeat };

export interface ParticipantReply { to: string; reqId: number; answer: AgentAnswer }

/** Write the staged snapshot of the epoch as this node's part, and fsync it. */
export interface WritePart { kind: 'writePart'; jobId: string; epoch: bigint; writer: string; units: string[]; reqId: number; to: string }

type JobState = 'starting' | 'running' | 'completed' | 'fenced' | 'stopped' | 'failed';

interface AgentJob {
  jobId: string;
  gen: number;
  units: string[];
  state: JobState;
  leaseUntilMs: number | null;
  highestPrepared: bigint;
  /** The epoch being snapshotted (frozen) and the call to answer. */
  freezing: { epoch: bigint; reqId: number; to: string; sinceMs: number; done: boolean } | null;
  staged: { epoch: bigint; pages: number } | null;
  starting: { reqId: number; to: string } | null;
  lastError: string;
}

export interface ParticipantStep {
  persist: WritePart[];
  send: ParticipantSend[];
  reply: ParticipantReply[];
}

export class NodeParticipant {
  private readonly jobs = new Map<string, AgentJob>();
  private clusterIncarnation = 0n;
  /** Per job, the gen below which every start is stopped (a stop may overtake the start it stops). */
  private readonly stoppedBelow = new Map<string, number>();
  private nextBeatMs = 0;
  private seq = 0;
  private nowMs = 0;

  constructor(private readonly config: ParticipantConfig) {}

  private mutant(name: string): boolean {
    return this.config.mutants?.has(name) ?? false;
  }

  step(input: ParticipantInput, nowMs: number): ParticipantStep {
    if (nowMs < this.nowMs) throw new Error(`participant time went back: ${nowMs} < ${this.nowMs}`);
    this.nowMs = nowMs;
    const out: ParticipantStep = { persist: [], send: [], reply: [] };
    switch (input.kind) {
      case 'call': this.onCall(input.call, out); break;
      case 'heartbeatAnswer': this.onHeartbeatAnswer(input.sentAtMs, input.answer); break;
      case 'spawned': this.onSpawned(input, out); break;
      case 'snapshotTaken': this.onSnapshot(input, out); break;
      case 'unitsExited': this.onExited(input, out); break;
      case 'partFailed': this.reply(out, input.to, input.reqId, { kind: 'refused', reason: `part of epoch ${input.epoch} not durable: ${input.reason}` }); break;
      case 'tick': break;
    }
    this.expire(out);
    if (nowMs >= this.nextBeatMs) this.beat(out);
    return out;
  }

  nextDeadline(): number | null {
    let at = this.nextBeatMs;
    for (const j of this.jobs.values()) {
      if (j.leaseUntilMs !== null && isLive(j)) at = Math.min(at, j.leaseUntilMs);
      if (j.freezing) at = Math.min(at, j.freezing.sinceMs + this.config.freezeTimeoutMs);
    }
    return at;
  }

  jobState(jobId: string): JobState | null {
    return this.jobs.get(jobId)?.state ?? null;
  }

  /**
   * May the job's units change their pages at nowMs? Only while the job runs
   * and its lease holds: a unit API shell serves writes only then, so an
   * agent that wakes from a pause past its lease serves nothing before its
   * lease timer fences the job.
   */
  mayRun(jobId: string, nowMs: number): boolean {
    const j = this.jobs.get(jobId);
    if (!j || j.state !== 'running' || j.freezing) return false;
    return j.leaseUntilMs === null || nowMs < j.leaseUntilMs;
  }

  // ---- calls from the cluster ------------------------------------------------

  private onCall(call: AgentCall, out: ParticipantStep): void {
    if (call.incarnation < this.clusterIncarnation) {
      return this.reply(out, call.from, call.reqId, { kind: 'refused', reason: `fenced: cluster incarnation ${call.incarnation} is older than ${this.clusterIncarnation}` });
    }
    // gens are a cluster incarnation's own numbers: a new incarnation starts them afresh.
    if (call.incarnation > this.clusterIncarnation) this.stoppedBelow.clear();
    this.clusterIncarnation = call.incarnation;
    const r = call.req;
    const job = this.jobs.get(r.jobId);
    switch (r.kind) {
      case 'startJob': return this.onStart(call, r.units, r.sources, r.leaseMs, r.gen, out);
      case 'stopJob':
        this.stoppedBelow.set(r.jobId, Math.max(this.stoppedBelow.get(r.jobId) ?? 0, r.gen));
        // Bounded (P6): stops of jobs this agent no longer holds go first; they only matter while a start is in flight.
        for (const id of this.stoppedBelow.keys()) {
          if (this.stoppedBelow.size <= 4 * this.config.maxJobs) break;
          if (!this.jobs.has(id) && id !== r.jobId) this.stoppedBelow.delete(id);
        }
        if (job && job.gen < r.gen) this.end(job, 'stopped', 'stopped by the cluster', out);
        return this.reply(out, call.from, call.reqId, { kind: 'ok' });
      case 'prepare': {
        // A completed job still takes part: the last round records its end state.
        if (!job || (job.state !== 'running' && job.state !== 'completed')) return this.reply(out, call.from, call.reqId, { kind: 'refused', reason: `job ${r.jobId} is ${job?.state ?? 'unknown'} here` });
        if (r.epoch <= job.highestPrepared) return this.reply(out, call.from, call.reqId, { kind: 'refused', reason: `stale epoch ${r.epoch}: prepared ${job.highestPrepared}` });
        if (job.freezing) this.thaw(job, out);
        if (job.staged) out.send.push({ to: 'units', unit: { op: 'dropStaging', jobId: job.jobId } });
        job.staged = null;
        job.highestPrepared = r.epoch;
        job.freezing = { epoch: r.epoch, reqId: call.reqId, to: call.from, sinceMs: this.nowMs, done: job.state === 'completed' };
        out.send.push({ to: 'units', unit: { op: 'freeze', jobId: job.jobId } });
        out.send.push({ to: 'units', unit: { op: 'snapshot', jobId: job.jobId, epoch: r.epoch, full: r.full, parentEpoch: r.parentEpoch } });
        return;
      }
      case 'commit': {
        if (!job || job.staged?.epoch !== r.epoch) {
          return this.reply(out, call.from, call.reqId, { kind: 'refused', reason: `no snapshot of epoch ${r.epoch} of job ${r.jobId} is staged` });
        }
        const staged = job.staged;
        job.staged = null;
        out.persist.push({ kind: 'writePart', jobId: job.jobId, epoch: r.epoch, writer: this.config.nodeId, units: job.units, reqId: call.reqId, to: call.from });
        const part: PartRef = { writer: this.config.nodeId, epoch: r.epoch, units: [...job.units], pages: staged.pages };
        return this.reply(out, call.from, call.reqId, { kind: 'durable', part });
      }
      case 'abort':
        if (job && job.freezing?.epoch === r.epoch) {
          if (!this.mutant('skip-thaw-on-abort')) this.thaw(job, out);
          else job.freezing = null;
        }
        if (job && job.staged?.epoch === r.epoch) {
          job.staged = null;
          out.send.push({ to: 'units', unit: { op: 'dropStaging', jobId: job.jobId } });
        }
        return this.reply(out, call.from, call.reqId, { kind: 'ok' });
    }
  }

  private onStart(call: AgentCall, units: string[], sources: RestoreSource[], leaseMs: number, gen: number, out: ParticipantStep): void {
    const jobId = call.req.jobId;
    if (gen < (this.stoppedBelow.get(jobId) ?? 0)) {
      return this.reply(out, call.from, call.reqId, { kind: 'refused', reason: `start ${gen} of job ${jobId} was stopped before it arrived` });
    }
    const old = this.jobs.get(jobId);
    if (!old && this.jobs.size >= this.config.maxJobs) {
      return this.reply(out, call.from, call.reqId, { kind: 'refused', reason: `at most ${this.config.maxJobs} jobs per agent` });
    }
    if (old && isLive(old)) this.end(old, 'stopped', 'restarted', out);
    else if (old?.freezing) this.endFreeze(old, `job ${jobId} restarted`, out);
    const job: AgentJob = {
      jobId, gen, units: [...units].sort(), state: 'starting', leaseUntilMs: this.nowMs + leaseMs,
      highestPrepared: old?.highestPrepared ?? 0n, freezing: null, staged: null, starting: { reqId: call.reqId, to: call.from }, lastError: '',
    };
    this.jobs.set(jobId, job);
    out.send.push({ to: 'units', unit: { op: 'spawn', jobId, units: job.units, sources, reqId: call.reqId } });
  }

  private onSpawned(input: Extract<ParticipantInput, { kind: 'spawned' }>, out: ParticipantStep): void {
    const job = this.jobs.get(input.jobId);
    if (!job || job.starting?.reqId !== input.reqId) return;
    const { to, reqId } = job.starting;
    job.starting = null;
    if (job.state !== 'starting') return this.reply(out, to, reqId, { kind: 'refused', reason: `job ${job.jobId} was ${job.state} while starting` });
    if (input.corrupt) {
      job.state = 'failed';
      job.lastError = `restore source damaged: ${input.corrupt.reason}`;
      out.send.push({ to: 'units', unit: { op: 'kill', jobId: job.jobId } });
      return this.reply(out, to, reqId, { kind: 'corrupt', ...input.corrupt });
    }
    job.state = 'running';
    this.reply(out, to, reqId, { kind: 'ok' });
  }

  private onSnapshot(input: Extract<ParticipantInput, { kind: 'snapshotTaken' }>, out: ParticipantStep): void {
    const job = this.jobs.get(input.jobId);
    const f = job?.freezing;
    if (!job || !f || f.epoch !== input.epoch) return; // aborted meanwhile: already thawed, staging dropped
    this.thaw(job, out);
    job.staged = { epoch: input.epoch, pages: input.pages };
    this.reply(out, f.to, f.reqId, { kind: 'prepared', pages: input.pages, bytes: input.bytes, done: f.done });
  }

  private onExited(input: Extract<ParticipantInput, { kind: 'unitsExited' }>, out: ParticipantStep): void {
    const job = this.jobs.get(input.jobId);
    if (!job || job.state !== 'running') return;
    // A unit that failed ends the job here: no round takes its state (P5). A clean exit mid-freeze
    // lets the snapshot finish: it holds the end state.
    if (!input.ok) {
      if (job.freezing) this.endFreeze(job, `units failed: ${input.reason}`, out);
      if (job.staged) out.send.push({ to: 'units', unit: { op: 'dropStaging', jobId: job.jobId } });
      job.staged = null;
    }
    job.state = input.ok ? 'completed' : 'failed';
    job.lastError = input.reason;
    job.leaseUntilMs = null;
  }

  // ---- leases and heartbeats -------------------------------------------------

  private onHeartbeatAnswer(sentAtMs: number, answer: HeartbeatAnswer): void {
    if (!answer.known) {
      this.nextBeatMs = this.nowMs; // register again at once
      return;
    }
    for (const id of answer.leasedJobs) {
      const j = this.jobs.get(id);
      if (j && j.leaseUntilMs !== null && isLive(j)) j.leaseUntilMs = Math.max(j.leaseUntilMs, sentAtMs + answer.leaseMs);
    }
  }

  private expire(out: ParticipantStep): void {
    for (const job of this.jobs.values()) {
      if (job.freezing && this.nowMs >= job.freezing.sinceMs + this.config.freezeTimeoutMs) {
        const f = job.freezing;
        this.thaw(job, out);
        this.reply(out, f.to, f.reqId, { kind: 'refused', reason: `freeze of epoch ${f.epoch} took over ${this.config.freezeTimeoutMs} ms` });
      }
      if (isLive(job) && job.leaseUntilMs !== null && this.nowMs >= job.leaseUntilMs) {
        if (this.mutant('skip-fence-on-lease-loss')) {
          job.leaseUntilMs = null;
          continue;
        }
        this.end(job, 'fenced', 'its lease lapsed: the cluster did not renew it', out);
      }
    }
  }

  private beat(out: ParticipantStep): void {
    this.seq += 1;
    this.nextBeatMs = this.nowMs + this.config.heartbeatIntervalMs;
    const jobs = [...this.jobs.values()].filter((j) => j.state !== 'starting').map((j) => ({ jobId: j.jobId, state: j.state as MemberJobState, gen: j.gen }));
    const used = [...this.jobs.values()].filter(isLive).reduce((a, j) => a + j.units.length, 0);
    out.send.push({
      to: 'cluster',
      heartbeat: { member: this.config.nodeId, incarnation: this.config.incarnation, seq: this.seq, sentAtMs: this.nowMs, jobs, freeUnits: Math.max(0, this.config.capacityUnits - used) },
    });
  }

  // ---- helpers ----------------------------------------------------------------

  /** Thaws a freeze that will not finish, and answers its PREPARE (P1). */
  private endFreeze(job: AgentJob, why: string, out: ParticipantStep): void {
    const f = job.freezing!;
    this.thaw(job, out);
    this.reply(out, f.to, f.reqId, { kind: 'refused', reason: `epoch ${f.epoch} not prepared: ${why}` });
  }

  private end(job: AgentJob, state: 'stopped' | 'fenced', why: string, out: ParticipantStep): void {
    if (job.freezing) this.endFreeze(job, why, out);
    if (job.starting) {
      this.reply(out, job.starting.to, job.starting.reqId, { kind: 'refused', reason: `job ${job.jobId} ${state} while starting` });
      job.starting = null;
    }
    job.staged = null;
    job.state = state;
    job.leaseUntilMs = null;
    job.lastError = why;
    out.send.push({ to: 'units', unit: { op: 'kill', jobId: job.jobId } });
  }

  private thaw(job: AgentJob, out: ParticipantStep): void {
    job.freezing = null;
    out.send.push({ to: 'units', unit: { op: 'thaw', jobId: job.jobId } });
  }

  private reply(out: ParticipantStep, to: string, reqId: number, answer: AgentAnswer): void {
    out.reply.push({ to, reqId, answer });
  }

  checkInvariants(): void {
    const fail = (m: string): never => { throw new Error(`participant ${this.config.nodeId}: ${m}`); };
    if (this.jobs.size > this.config.maxJobs) fail('P6: too many jobs');
    if (this.stoppedBelow.size > 4 * this.config.maxJobs + 1) fail('P6: too many remembered stops');
    for (const j of this.jobs.values()) {
      if (j.freezing && this.nowMs > j.freezing.sinceMs + this.config.freezeTimeoutMs) fail(`P1: job ${j.jobId} frozen past its timeout`);
      if (j.freezing && j.freezing.epoch !== j.highestPrepared) fail(`P2: job ${j.jobId} freezes a stale epoch`);
      if (j.staged && j.staged.epoch !== j.highestPrepared) fail(`P2: job ${j.jobId} stages a stale epoch`);
      if (!isLive(j) && j.state !== 'completed' && (j.freezing || j.staged)) fail(`P5: ${j.state} job ${j.jobId} holds a snapshot or is frozen`);
      if (j.state === 'running' && j.leaseUntilMs !== null && j.leaseUntilMs < this.nowMs && !this.mutant('skip-fence-on-lease-loss')) fail(`P4: job ${j.jobId} runs past its lease`);
    }
  }
}

function isLive(j: AgentJob): boolean {
  return j.state === 'running' || j.state === 'starting';
}
