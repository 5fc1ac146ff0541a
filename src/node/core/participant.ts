import type { AgentAnswer, AgentCall, MemberJobState, PartRef, RefusalCode } from '../../protocol/messages.js';
import type { JobState, JobSummary, ParticipantConfig, ParticipantInput, ParticipantStep } from './participant-types.js';
import { LOCAL } from './participant-types.js';
import { checkParticipant, isLive, refused, stopKey, summaryOf, type AgentJob, type LocalStep } from './participant-state.js';

export * from './participant-types.js';

// The node agent's job supervisor as a pure core: job start, stop and
// restore, leases and fencing, the checkpoint participant of a coordinator's
// rounds (prepare, commit, abort), the agent's own local checkpoints, and
// the heartbeat that carries the agent's job states upward. The simulator
// and the real agent (src/node/agent.ts) run this same class.
//
// Intuition: the agent does what its coordinator says, but never longer than
// its lease: every lease-bound job is bound to a lease the coordinator renews
// by naming the job in heartbeat answers, counted from the heartbeat's send.
// When a lease runs out the agent kills the job's units at once (fenced), so
// a coordinator that lost touch can run them elsewhere after the lease. A
// checkpoint freezes the units, snapshots into staging, thaws; a round's
// PREPARE is answered then, and COMMIT writes the staged part (DURABLE once
// it is fsynced); a local checkpoint writes part and manifest at once. A
// written part's pages count as saved only once the coordinator builds on
// its epoch (the next PREPARE names it as parent); otherwise they count as
// changed again, so no change is ever lost between epochs. Every effect
// (spawn, kill, freeze, snapshot, thaw, write) is a send to the local
// `units` port; results come back as inputs. This is the one place on a node
// that chooses an epoch number (a local checkpoint's) or accepts one.
//
// Invariants (checkInvariants; tests cite them as P1..P7):
//  P1. Always thaw: a job is frozen only while a snapshot for the epoch
//      being taken is in progress, and at most freezeTimeoutMs; an abort,
//      a stop, a fence, a failure or the timeout thaws it in the same step.
//  P2. Epochs only grow: a PREPARE for an epoch not above the highest this
//      job used is refused; a frozen or staged snapshot is for the highest.
//  P3. Fencing: a call from an older incarnation of a coordinator than one
//      seen is refused before anything else.
//  P4. A lease-bound job whose lease ran out is fenced in that step: its
//      units are killed and it takes part in no round.
//  P5. A job that is neither running nor completed holds no staged
//      snapshot and is not frozen.
//  P6. Bounded: at most maxJobs jobs, stops remembered for at most
//      4 x maxJobs jobs, incarnations for at most maxCoordinators.
//  P7. One checkpoint step of a job at a time: it never freezes while a
//      write of it runs, and stages at most one snapshot.


export class NodeParticipant {
  private readonly jobs = new Map<string, AgentJob>();
  /** The newest incarnation seen per coordinator (P3). */
  private readonly incarnations = new Map<string, bigint>();
  /**
   * Per coordinator and job, the gen below which every start is stopped (a
   * stop may overtake the start it stops). Gens are one coordinator
   * incarnation's own numbers, so the key names the coordinator.
   */
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
      case 'localCheckpoint': this.onLocal(input.jobId, input.full, input.reqId, LOCAL, out); break;
      case 'heartbeatAnswer': this.onHeartbeatAnswer(input.sentAtMs, input.answer); break;
      case 'spawned': this.onSpawned(input, out); break;
      case 'snapshotTaken': this.onSnapshot(input, out); break;
      case 'snapshotFailed': this.onSnapshotFailed(input, out); break;
      case 'unitsExited': this.onExited(input, out); break;
      case 'written': this.onWritten(input, out); break;
      case 'partFailed': this.onWriteFailed(input, out); break;
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
      if (j.nextLocalMs !== null) at = Math.min(at, j.nextLocalMs);
    }
    return at;
  }

  jobState(jobId: string): JobState | null {
    return this.jobs.get(jobId)?.state ?? null;
  }

  /** What the shell may show of a job; null if unknown. */
  summary(jobId: string): JobSummary | null {
    const j = this.jobs.get(jobId);
    return j ? summaryOf(j) : null;
  }

  jobIds(): string[] {
    return [...this.jobs.keys()];
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

  /** The job is lease-bound and its lease has run out at nowMs (its fence may not have been stepped yet). */
  leaseLapsed(jobId: string, nowMs: number): boolean {
    const j = this.jobs.get(jobId);
    return j !== undefined && j.leaseUntilMs !== null && nowMs >= j.leaseUntilMs;
  }

  // ---- calls from a coordinator ------------------------------------------------

  private onCall(call: AgentCall, out: ParticipantStep): void {
    const seen = this.incarnations.get(call.from) ?? 0n;
    if (call.incarnation < seen) {
      return this.reply(out, call.from, call.reqId, refused(`fenced: coordinator ${call.from} incarnation ${call.incarnation} is older than ${seen}`, 'failed-precondition'));
    }
    if (call.deadlineMs !== undefined && this.nowMs > call.deadlineMs) {
      return this.reply(out, call.from, call.reqId, refused(`the call came ${this.nowMs - call.deadlineMs} ms after its deadline: its caller gave up`, 'deadline-exceeded'));
    }
    // gens are a coordinator incarnation's own numbers: a new incarnation starts them afresh.
    if (call.incarnation > seen) for (const k of [...this.stoppedBelow.keys()]) if (k.startsWith(`${call.from}\n`)) this.stoppedBelow.delete(k);
    this.incarnations.delete(call.from);
    this.incarnations.set(call.from, call.incarnation);
    for (const id of this.incarnations.keys()) {
      if (this.incarnations.size <= (this.config.maxCoordinators ?? 16)) break;
      this.incarnations.delete(id); // the oldest first (P6)
    }
    const r = call.req;
    const job = this.jobs.get(r.jobId);
    switch (r.kind) {
      case 'startJob': return this.onStart(call, r, out);
      case 'stopJob': {
        const key = stopKey(call.from, r.jobId);
        this.stoppedBelow.set(key, Math.max(this.stoppedBelow.get(key) ?? 0, r.gen));
        // Bounded (P6): stops of jobs this agent no longer holds go first; they only matter while a start is in flight.
        for (const k of this.stoppedBelow.keys()) {
          if (this.stoppedBelow.size <= 4 * this.config.maxJobs) break;
          if (!this.jobs.has(k.slice(k.indexOf('\n') + 1)) && k !== key) this.stoppedBelow.delete(k);
        }
        if (job && job.gen < r.gen) {
          if (isLive(job)) this.end(job, 'stopped', 'stopped by its coordinator', true, out);
          else {
            job.leaseUntilMs = null;
            job.nextLocalMs = null;
            out.send.push({ to: 'units', unit: { op: 'kill', jobId: job.jobId, graceful: true } });
          }
        }
        return this.reply(out, call.from, call.reqId, { kind: 'ok' });
      }
      case 'prepare': return this.onPrepare(call, r, job, out);
      case 'commit': {
        const why = this.notCheckpointable(r.jobId, job);
        if (why) return this.reply(out, call.from, call.reqId, why);
        if (job!.writing) return this.reply(out, call.from, call.reqId, this.busy(job!));
        if (job!.staged?.epoch !== r.epoch) {
          const held = job!.staged ? ` (epoch ${job!.staged.epoch} is)` : '';
          return this.reply(out, call.from, call.reqId, refused(`nothing prepared for epoch ${r.epoch} of job ${r.jobId}${held}`, 'failed-precondition'));
        }
        this.write(job!, r.epoch, call.reqId, call.from, null, out);
        return;
      }
      case 'abort': {
        let dropped = false;
        if (job && job.freezing?.epoch === r.epoch) {
          dropped = true;
          if (!this.mutant('skip-thaw-on-abort')) this.endFreeze(job, 'aborted by its coordinator', out);
          else job.freezing = null;
        }
        if (job && job.staged?.epoch === r.epoch) {
          dropped = true;
          this.dropStaged(job, out);
        }
        if (job && job.written === r.epoch) {
          dropped = true;
          job.written = null;
          out.send.push({ to: 'units', unit: { op: 'settle', jobId: job.jobId, epoch: r.epoch, confirmed: false } });
        }
        if (job && job.writing?.epoch === r.epoch && !job.writing.local) {
          dropped = true;
          job.writing.aborted = true; // its pages count as changed again once the write ends
        }
        return this.reply(out, call.from, call.reqId, { kind: 'ok', dropped });
      }
    }
  }

  private onPrepare(call: AgentCall, r: Extract<AgentCall['req'], { kind: 'prepare' }>, job: AgentJob | undefined, out: ParticipantStep): void {
    const why = this.notCheckpointable(r.jobId, job);
    if (why) return this.reply(out, call.from, call.reqId, why);
    const j = job!;
    if (r.epoch <= j.highestEpoch) {
      return this.reply(out, call.from, call.reqId, refused(`stale prepare: epoch ${r.epoch} of job ${r.jobId} is not above epoch ${j.highestEpoch}`, 'aborted'));
    }
    if (!r.full && r.parentEpoch === null) return this.reply(out, call.from, call.reqId, refused('an incremental epoch needs a parent epoch', 'invalid-argument'));
    if (j.writing || j.freezing?.local) return this.reply(out, call.from, call.reqId, this.busy(j));
    // A newer PREPARE supersedes one still freezing: its coordinator gave up on that round.
    if (j.freezing) this.endFreeze(j, `superseded by epoch ${r.epoch}`, out);
    if (j.staged) this.dropStaged(j, out);
    this.settleWritten(j, r.parentEpoch, out);
    j.highestEpoch = r.epoch;
    this.freeze(j, r.epoch, call.reqId, call.from, null, r.full, r.parentEpoch, out);
  }

  private onStart(call: AgentCall, r: Extract<AgentCall['req'], { kind: 'startJob' }>, out: ParticipantStep): void {
    const jobId = r.jobId;
    if (r.gen < (this.stoppedBelow.get(stopKey(call.from, jobId)) ?? 0)) {
      return this.reply(out, call.from, call.reqId, refused(`start ${r.gen} of job ${jobId} was stopped before it arrived`, 'aborted'));
    }
    const old = this.jobs.get(jobId);
    if (!old && this.jobs.size >= this.config.maxJobs) {
      return this.reply(out, call.from, call.reqId, refused(`node ${this.config.nodeId} already runs ${this.jobs.size} jobs (limit ${this.config.maxJobs})`, 'resource-exhausted'));
    }
    const leaseUntilMs = r.leaseMs === null ? null : this.nowMs + r.leaseMs;
    if (old && isLive(old)) this.end(old, 'stopped', 'restarted', true, out);
    else if (old?.freezing) this.endFreeze(old, `job ${jobId} restarted`, out);
    // What the old job staged or wrote unconfirmed is no epoch of the new one: its pages count as changed again.
    if (old?.staged) this.dropStaged(old, out);
    if (old && old.written !== null) out.send.push({ to: 'units', unit: { op: 'settle', jobId, epoch: old.written, confirmed: false } });
    const job: AgentJob = {
      jobId, gen: r.gen, units: [...r.units].sort(), state: 'starting',
      leaseUntilMs, leaseBound: r.leaseMs !== null,
      highestEpoch: old?.highestEpoch ?? 0n, lastEpoch: null, epochsSinceFull: 0,
      fullEvery: Math.max(1, r.fullEvery || this.config.defaultFullEvery), intervalMs: r.intervalMs ?? 0, nextLocalMs: null,
      freezing: null, staged: null, writing: old?.writing ?? null, written: null,
      starting: { reqId: call.reqId, to: call.from, prior: old !== undefined }, committed: old?.committed ?? 0, failed: old?.failed ?? 0, lastError: '',
    };
    this.jobs.set(jobId, job);
    out.send.push({ to: 'units', unit: { op: 'spawn', jobId, units: job.units, sources: r.sources, reqId: call.reqId } });
  }

  private onSpawned(input: Extract<ParticipantInput, { kind: 'spawned' }>, out: ParticipantStep): void {
    const job = this.jobs.get(input.jobId);
    if (!job || job.starting?.reqId !== input.reqId) return;
    const { to, reqId, prior } = job.starting;
    job.starting = null;
    if (job.state !== 'starting') return this.reply(out, to, reqId, refused(`job ${job.jobId} was ${job.state} while starting`, 'aborted'));
    if (input.failed !== undefined) {
      // Nothing runs: a job that existed before says why; a new one is gone again.
      if (prior) {
        job.state = 'stopped';
        job.leaseUntilMs = null;
        job.lastError = `restore failed: ${input.failed}`;
      } else this.jobs.delete(job.jobId);
      return this.reply(out, to, reqId, refused(input.failed, 'unavailable'));
    }
    if (input.corrupt) {
      job.state = 'failed';
      job.leaseUntilMs = null;
      job.lastError = `restore source damaged: ${input.corrupt.reason}`;
      out.send.push({ to: 'units', unit: { op: 'kill', jobId: job.jobId, graceful: false } });
      return this.reply(out, to, reqId, { kind: 'corrupt', ...input.corrupt });
    }
    if (input.restored) {
      job.lastEpoch = input.restored.epoch;
      if (input.restored.highestEpoch > job.highestEpoch) job.highestEpoch = input.restored.highestEpoch;
      if (input.restored.epoch > job.highestEpoch) job.highestEpoch = input.restored.epoch;
      job.epochsSinceFull = input.restored.chainLength - 1;
      const saved = input.restored.job;
      if (saved) {
        job.units = [...saved.units].sort();
        job.intervalMs = saved.intervalMs;
        job.fullEvery = Math.max(1, saved.fullEvery || this.config.defaultFullEvery);
      }
    }
    job.state = 'running';
    if (job.intervalMs > 0) job.nextLocalMs = this.nowMs + job.intervalMs;
    this.reply(out, to, reqId, { kind: 'ok' });
  }

  // ---- checkpoints ---------------------------------------------------------------

  private onLocal(jobId: string, forceFull: boolean, reqId: number, to: string, out: ParticipantStep): void {
    const job = this.jobs.get(jobId);
    const why = this.notCheckpointable(jobId, job);
    if (why) return this.reply(out, to, reqId, why);
    const j = job!;
    if (j.leaseBound) return this.reply(out, to, reqId, refused(`job ${jobId} is run by a coordinator: its checkpoints are the coordinator's rounds`, 'failed-precondition'));
    // A round's staged snapshot waits for its COMMIT: one staging per job (P7).
    if (j.freezing || j.writing || j.staged) return this.reply(out, to, reqId, this.busy(j));
    const full = forceFull || j.lastEpoch === null || j.epochsSinceFull + 1 >= j.fullEvery;
    const parentEpoch = full ? null : j.lastEpoch;
    const epoch = j.highestEpoch + 1n;
    j.highestEpoch = epoch;
    this.freeze(j, epoch, reqId, to, { full, parentEpoch }, full, parentEpoch, out);
  }

  private freeze(j: AgentJob, epoch: bigint, reqId: number, to: string, local: LocalStep | null, full: boolean, parentEpoch: bigint | null, out: ParticipantStep): void {
    j.freezing = { epoch, reqId, to, sinceMs: this.nowMs, done: j.state === 'completed', local };
    out.send.push({ to: 'units', unit: { op: 'freeze', jobId: j.jobId, epoch, full } });
    out.send.push({ to: 'units', unit: { op: 'snapshot', jobId: j.jobId, epoch, full, parentEpoch } });
  }

  private onSnapshot(input: Extract<ParticipantInput, { kind: 'snapshotTaken' }>, out: ParticipantStep): void {
    const job = this.jobs.get(input.jobId);
    const f = job?.freezing;
    if (!job || !f || f.epoch !== input.epoch) {
      // Aborted or timed out meanwhile: already thawed; what it staged is not wanted.
      out.send.push({ to: 'units', unit: { op: 'dropStaging', jobId: input.jobId, epoch: input.epoch } });
      return;
    }
    this.thaw(job, out);
    job.staged = { epoch: input.epoch, pages: input.pages };
    if (f.local) return this.write(job, f.epoch, f.reqId, f.to, f.local, out);
    this.reply(out, f.to, f.reqId, { kind: 'prepared', pages: input.pages, bytes: input.bytes, done: f.done });
  }

  private onSnapshotFailed(input: Extract<ParticipantInput, { kind: 'snapshotFailed' }>, out: ParticipantStep): void {
    const job = this.jobs.get(input.jobId);
    if (!job || job.freezing?.epoch !== input.epoch) return;
    job.failed += 1;
    job.lastError = `${input.stage}: ${input.reason}`;
    const f = job.freezing;
    this.thaw(job, out);
    if (f.local && job.nextLocalMs === null && job.intervalMs > 0 && job.state === 'running') job.nextLocalMs = this.nowMs + job.intervalMs;
    this.reply(out, f.to, f.reqId, refused(`epoch ${input.epoch} of job ${job.jobId}: ${input.stage} failed: ${input.reason}`, 'unavailable'));
  }

  private write(j: AgentJob, epoch: bigint, reqId: number, to: string, local: LocalStep | null, out: ParticipantStep): void {
    const pages = j.staged?.pages ?? 0;
    j.staged = null;
    j.writing = { epoch, pages, reqId, to, local, aborted: false };
    out.send.push({
      to: 'units',
      unit: {
        op: 'write', jobId: j.jobId, epoch, writer: this.config.nodeId, units: [...j.units], local: local !== null,
        parentEpoch: local?.parentEpoch ?? null, full: local?.full ?? false, reqId, to,
      },
    });
  }

  private onWritten(input: Extract<ParticipantInput, { kind: 'written' }>, out: ParticipantStep): void {
    const job = this.jobs.get(input.jobId);
    const w = job?.writing;
    if (!job || !w || w.epoch !== input.epoch || w.reqId !== input.reqId) return;
    job.writing = null;
    if (w.local) {
      job.lastEpoch = w.epoch;
      job.epochsSinceFull = w.local.full ? 0 : job.epochsSinceFull + 1;
      job.committed += 1;
      if (job.intervalMs > 0 && job.state === 'running') job.nextLocalMs = this.nowMs + job.intervalMs;
      return this.reply(out, w.to, w.reqId, { kind: 'committed', epoch: w.epoch, full: w.local.full, chainLength: job.epochsSinceFull + 1 });
    }
    if (w.aborted) {
      out.send.push({ to: 'units', unit: { op: 'settle', jobId: job.jobId, epoch: w.epoch, confirmed: false } });
      return this.reply(out, w.to, w.reqId, refused(`epoch ${w.epoch} of job ${job.jobId} was aborted while its part was written`, 'aborted'));
    }
    if (job.written !== null) out.send.push({ to: 'units', unit: { op: 'settle', jobId: job.jobId, epoch: job.written, confirmed: false } });
    job.written = w.epoch;
    const part: PartRef = { writer: this.config.nodeId, epoch: w.epoch, units: [...job.units], pages: w.pages };
    this.reply(out, w.to, w.reqId, { kind: 'durable', part });
  }

  private onWriteFailed(input: Extract<ParticipantInput, { kind: 'partFailed' }>, out: ParticipantStep): void {
    const job = this.jobs.get(input.jobId);
    const w = job?.writing;
    if (!job || !w || w.epoch !== input.epoch || w.reqId !== input.reqId) return;
    job.writing = null;
    job.failed += 1;
    job.lastError = `write: ${input.reason}`;
    out.send.push({ to: 'units', unit: { op: 'settle', jobId: job.jobId, epoch: w.epoch, confirmed: false } });
    if (w.local && job.intervalMs > 0 && job.state === 'running') job.nextLocalMs = this.nowMs + job.intervalMs;
    this.reply(out, w.to, w.reqId, refused(`epoch ${w.epoch} of job ${job.jobId}: write failed: ${input.reason}`, 'unavailable'));
  }

  /** A PREPARE names the epoch it builds on: a written part of that epoch was committed; any other was not. */
  private settleWritten(j: AgentJob, parentEpoch: bigint | null, out: ParticipantStep): void {
    if (j.written === null) return;
    const confirmed = j.written === parentEpoch;
    out.send.push({ to: 'units', unit: { op: 'settle', jobId: j.jobId, epoch: j.written, confirmed } });
    if (confirmed) {
      j.lastEpoch = j.written;
      j.committed += 1;
    }
    j.written = null;
  }

  private onExited(input: Extract<ParticipantInput, { kind: 'unitsExited' }>, out: ParticipantStep): void {
    const job = this.jobs.get(input.jobId);
    if (!job || job.state !== 'running') return;
    // A unit that failed ends the job here: no round takes its state (P5). A clean exit mid-freeze
    // lets the snapshot finish: it holds the end state.
    if (!input.ok) {
      if (job.freezing) this.endFreeze(job, `units failed: ${input.reason}`, out);
      if (job.staged) this.dropStaged(job, out);
    }
    job.state = input.ok ? 'completed' : 'failed';
    job.lastError = input.ok ? '' : input.reason;
    job.leaseUntilMs = null;
    job.nextLocalMs = null;
  }

  // ---- leases, periodic checkpoints, heartbeats -----------------------------------

  private onHeartbeatAnswer(sentAtMs: number, answer: { known: boolean; leasedJobs: string[]; leaseMs: number }): void {
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
        this.endFreeze(job, `freeze of epoch ${job.freezing.epoch} took over ${this.config.freezeTimeoutMs} ms`, out);
      }
      if (isLive(job) && job.leaseUntilMs !== null && this.nowMs >= job.leaseUntilMs) {
        if (this.mutant('skip-fence-on-lease-loss')) {
          job.leaseUntilMs = null;
          continue;
        }
        this.end(job, 'fenced', `lease lapsed: its coordinator stopped renewing job ${job.jobId} here, so its units were killed`, false, out);
      }
      if (job.nextLocalMs !== null && this.nowMs >= job.nextLocalMs) {
        job.nextLocalMs = null;
        // A step still running skips this turn (a local one sets the next turn at its end; a round's, here).
        if (job.freezing || job.writing || job.staged) {
          if (!job.freezing?.local && !job.writing?.local) job.nextLocalMs = this.nowMs + job.intervalMs;
          continue;
        }
        this.onLocal(job.jobId, false, 0, '', out);
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

  private notCheckpointable(jobId: string, job: AgentJob | undefined): AgentAnswer | null {
    if (!job) return refused(`unknown job ${JSON.stringify(jobId)} on node ${this.config.nodeId}`, 'not-found');
    // A completed job still takes part: the last round records its end state.
    if (job.state === 'running' || job.state === 'completed') return null;
    return refused(`job ${jobId} is ${job.state} on ${this.config.nodeId}; it takes part in no round`, 'failed-precondition');
  }

  private busy(j: AgentJob): AgentAnswer {
    return refused(`a checkpoint step of job ${j.jobId} is already in progress`, 'aborted');
  }

  /** Thaws a freeze that will not finish, and answers the step that asked for it (P1). */
  private endFreeze(job: AgentJob, why: string, out: ParticipantStep): void {
    const f = job.freezing!;
    this.thaw(job, out);
    if (f.local && job.intervalMs > 0 && job.state === 'running') job.nextLocalMs = this.nowMs + job.intervalMs;
    this.reply(out, f.to, f.reqId, refused(`epoch ${f.epoch} not ${f.local ? 'checkpointed' : 'prepared'}: ${why}`, 'aborted'));
  }

  private dropStaged(job: AgentJob, out: ParticipantStep): void {
    out.send.push({ to: 'units', unit: { op: 'dropStaging', jobId: job.jobId, epoch: job.staged!.epoch } });
    job.staged = null;
  }

  private end(job: AgentJob, state: 'stopped' | 'fenced', why: string, graceful: boolean, out: ParticipantStep): void {
    if (job.freezing) this.endFreeze(job, why, out);
    if (job.starting) {
      this.reply(out, job.starting.to, job.starting.reqId, refused(`job ${job.jobId} ${state} while starting`, 'aborted'));
      job.starting = null;
    }
    if (job.staged) this.dropStaged(job, out);
    job.state = state;
    job.leaseUntilMs = null;
    job.nextLocalMs = null;
    job.lastError = why;
    out.send.push({ to: 'units', unit: { op: 'kill', jobId: job.jobId, graceful } });
  }

  private thaw(job: AgentJob, out: ParticipantStep): void {
    job.freezing = null;
    out.send.push({ to: 'units', unit: { op: 'thaw', jobId: job.jobId } });
  }

  private reply(out: ParticipantStep, to: string, reqId: number, answer: AgentAnswer): void {
    if (to === '') return; // a periodic checkpoint: nobody waits for it
    out.reply.push({ to, reqId, answer });
  }

  checkInvariants(): void {
    checkParticipant({ config: this.config, nowMs: this.nowMs, jobs: this.jobs, stops: this.stoppedBelow.size, incarnations: this.incarnations.size });
  }
}
