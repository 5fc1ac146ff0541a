import type { AgentCall, MemberJobState } from '../../protocol/messages.js';
import type { JobState, JobSummary, ParticipantConfig, ParticipantInput, ParticipantStep } from './participant-types.js';
import { LOCAL } from './participant-types.js';
import { checkParticipant, isBusy, isLive, maxEnded, refused, reply, stopKey, summaryOf, type AgentJob } from './participant-state.js';
import {
  dropStaged, endFreeze, onAbort, onCommit, onLocal, onPrepare, onSnapshot, onSnapshotFailed, onWriteFailed, onWritten, type CheckpointCtx,
} from './participant-checkpoint.js';

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
// it is fsynced); a snapshot with no page votes read-only instead: its empty
// part is recorded at once and PREPARED carries it, so it needs no COMMIT
// (one that comes anyway is answered DURABLE again). A local checkpoint
// writes part and manifest at once. A written part's pages count as saved only once the coordinator builds on
// its epoch (the next PREPARE names it as parent); otherwise they count as
// changed again, so no change is ever lost between epochs. Every effect
// (spawn, kill, freeze, snapshot, thaw, write) is a send to the local
// `units` port; results come back as inputs. This is the one place on a node
// that chooses an epoch number (a local checkpoint's) or accepts one.
//
// This file holds the jobs' lifecycle (start, restore, stop, exit), the
// fencing of calls, leases and the heartbeat. A job's checkpoint steps
// (PREPARE, COMMIT, ABORT, local checkpoints; freeze, snapshot, write,
// settle) are in participant-checkpoint.ts; the per-job record and the
// checks of the invariants below in participant-state.ts.
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
//  P6. Bounded: at most maxJobs live jobs and maxEndedJobs ended ones
//      (besides those a checkpoint step still holds), stops remembered for
//      at most 4 x maxJobs jobs, incarnations for at most maxCoordinators.
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
  /** Ended jobs seen so far (their endedSeq). */
  private endedCount = 0;
  private seq = 0;
  private nowMs = 0;

  constructor(private readonly config: ParticipantConfig) {}

  /** What the checkpoint steps (participant-checkpoint.ts) read of this core during a step. */
  private get cx(): CheckpointCtx {
    return { config: this.config, jobs: this.jobs, nowMs: this.nowMs };
  }

  private mutant(name: string): boolean {
    return this.config.mutants?.has(name) ?? false;
  }

  step(input: ParticipantInput, nowMs: number): ParticipantStep {
    if (nowMs < this.nowMs) throw new Error(`participant time went back: ${nowMs} < ${this.nowMs}`);
    this.nowMs = nowMs;
    const out: ParticipantStep = { persist: [], send: [], reply: [] };
    switch (input.kind) {
      case 'call': this.onCall(input.call, out); break;
      case 'localCheckpoint': onLocal(this.cx, input.jobId, input.full, input.reqId, LOCAL, out); break;
      case 'heartbeatAnswer': this.onHeartbeatAnswer(input.sentAtMs, input.answer); break;
      case 'forgetJob': this.onForget(input.reqId, input.jobId, out); break;
      case 'spawned': this.onSpawned(input, out); break;
      case 'snapshotTaken': onSnapshot(this.cx, input, out); break;
      case 'snapshotFailed': onSnapshotFailed(this.cx, input, out); break;
      case 'unitsExited': this.onExited(input, out); break;
      case 'written': onWritten(this.cx, input, out); break;
      case 'partFailed': onWriteFailed(this.cx, input, out); break;
      case 'tick': break;
    }
    this.expire(out);
    this.forgetEnded(out);
    if (nowMs >= this.nextBeatMs) this.beat(out);
    return out;
  }

  /**
   * P6: ended jobs are remembered up to maxEndedJobs (for status, reads of
   * their pages and a coordinator's final round); past it, those that ended
   * first and that no checkpoint step holds are forgotten, and the shell
   * frees what they held (`forget`). Without this a node that ran
   * maxJobs jobs refused every start after, and kept their pages for ever.
   */
  private forgetEnded(out: ParticipantStep): void {
    const ended: AgentJob[] = [];
    for (const j of this.jobs.values()) {
      if (isLive(j)) continue;
      j.endedSeq ??= ++this.endedCount;
      ended.push(j);
    }
    let excess = ended.length - maxEnded(this.config);
    if (excess <= 0) return;
    for (const j of ended.sort((a, b) => a.endedSeq! - b.endedSeq!)) {
      if (excess <= 0) break;
      if (isBusy(j)) continue;
      this.jobs.delete(j.jobId);
      out.send.push({ to: 'units', unit: { op: 'forget', jobId: j.jobId } });
      excess -= 1;
    }
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
      return reply(out, call.from, call.reqId, refused(`fenced: coordinator ${call.from} incarnation ${call.incarnation} is older than ${seen}`, 'failed-precondition'));
    }
    if (call.deadlineMs !== undefined && this.nowMs > call.deadlineMs) {
      return reply(out, call.from, call.reqId, refused(`the call came ${this.nowMs - call.deadlineMs} ms after its deadline: its caller gave up`, 'deadline-exceeded'));
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
        return reply(out, call.from, call.reqId, { kind: 'ok' });
      }
      case 'prepare': return onPrepare(this.cx, call, r, job, out);
      case 'commit': return onCommit(this.cx, call, r, job, out);
      case 'abort': return onAbort(this.cx, call, r, job, out);
    }
  }

  private onStart(call: AgentCall, r: Extract<AgentCall['req'], { kind: 'startJob' }>, out: ParticipantStep): void {
    const jobId = r.jobId;
    if (r.gen < (this.stoppedBelow.get(stopKey(call.from, jobId)) ?? 0)) {
      return reply(out, call.from, call.reqId, refused(`start ${r.gen} of job ${jobId} was stopped before it arrived`, 'aborted'));
    }
    const old = this.jobs.get(jobId);
    const live = [...this.jobs.values()].filter(isLive).length;
    if (!(old && isLive(old)) && live >= this.config.maxJobs) {
      return reply(out, call.from, call.reqId, refused(`node ${this.config.nodeId} already runs ${live} jobs (limit ${this.config.maxJobs})`, 'resource-exhausted'));
    }
    const leaseUntilMs = r.leaseMs === null ? null : this.nowMs + r.leaseMs;
    if (old && isLive(old)) this.end(old, 'stopped', 'restarted', true, out);
    else if (old?.freezing) endFreeze(this.cx, old, `job ${jobId} restarted`, out);
    // What the old job staged or wrote unconfirmed is no epoch of the new one: its pages count as changed again.
    if (old?.staged) dropStaged(old, out);
    if (old && old.written !== null) out.send.push({ to: 'units', unit: { op: 'settle', jobId, epoch: old.written.epoch, confirmed: false } });
    const job: AgentJob = {
      jobId, gen: r.gen, units: [...r.units].sort(), state: 'starting',
      leaseUntilMs, leaseBound: r.leaseMs !== null,
      highestEpoch: old?.highestEpoch ?? 0n, lastEpoch: null, epochsSinceFull: 0,
      fullEvery: Math.max(1, r.fullEvery || this.config.defaultFullEvery), intervalMs: r.intervalMs ?? 0, nextLocalMs: null,
      freezing: null, staged: null, writing: old?.writing ?? null, written: null,
      starting: { reqId: call.reqId, to: call.from, prior: old !== undefined }, endedSeq: null, committed: old?.committed ?? 0, failed: old?.failed ?? 0, lastError: '',
    };
    this.jobs.set(jobId, job);
    out.send.push({ to: 'units', unit: { op: 'spawn', jobId, units: job.units, sources: r.sources, reqId: call.reqId } });
  }

  private onSpawned(input: Extract<ParticipantInput, { kind: 'spawned' }>, out: ParticipantStep): void {
    const job = this.jobs.get(input.jobId);
    if (!job || job.starting?.reqId !== input.reqId) return;
    const { to, reqId, prior } = job.starting;
    job.starting = null;
    if (job.state !== 'starting') return reply(out, to, reqId, refused(`job ${job.jobId} was ${job.state} while starting`, 'aborted'));
    if (input.failed !== undefined) {
      // Nothing runs: a job that existed before says why; a new one is gone again.
      if (prior) {
        job.state = 'stopped';
        job.leaseUntilMs = null;
        job.lastError = `restore failed: ${input.failed}`;
      } else this.jobs.delete(job.jobId);
      return reply(out, to, reqId, refused(input.failed, 'unavailable'));
    }
    if (input.corrupt) {
      job.state = 'failed';
      job.leaseUntilMs = null;
      job.lastError = `restore source damaged: ${input.corrupt.reason}`;
      out.send.push({ to: 'units', unit: { op: 'kill', jobId: job.jobId, graceful: false } });
      return reply(out, to, reqId, { kind: 'corrupt', ...input.corrupt });
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
    reply(out, to, reqId, { kind: 'ok' });
  }

  /**
   * Job control's delete (agent tier): the units are stopped (gracefully) if they run, and the record goes,
   * so the id can be started afresh; a write still running ends unanswered (its record is gone) and its part
   * is no epoch of anything. A lease-bound job is its coordinator's to delete: refused, nothing changes.
   */
  private onForget(reqId: number, jobId: string, out: ParticipantStep): void {
    const job = this.jobs.get(jobId);
    if (!job) return reply(out, LOCAL, reqId, refused(`unknown job ${JSON.stringify(jobId)} on node ${this.config.nodeId}`, 'not-found'));
    if (job.leaseBound && isLive(job)) return reply(out, LOCAL, reqId, refused(`job ${jobId} is run by a coordinator: delete it there`, 'failed-precondition'));
    if (isLive(job)) this.end(job, 'stopped', 'deleted by the operator', true, out);
    else if (job.freezing) endFreeze(this.cx, job, `job ${jobId} deleted`, out);
    if (job.staged) dropStaged(job, out);
    if (job.written !== null) out.send.push({ to: 'units', unit: { op: 'settle', jobId, epoch: job.written.epoch, confirmed: false } });
    this.jobs.delete(jobId);
    reply(out, LOCAL, reqId, { kind: 'ok' });
  }

  private onExited(input: Extract<ParticipantInput, { kind: 'unitsExited' }>, out: ParticipantStep): void {
    const job = this.jobs.get(input.jobId);
    if (!job || job.state !== 'running') return;
    // A unit that failed ends the job here: no round takes its state (P5). A clean exit mid-freeze
    // lets the snapshot finish: it holds the end state.
    if (!input.ok) {
      if (job.freezing) endFreeze(this.cx, job, `units failed: ${input.reason}`, out);
      if (job.staged) dropStaged(job, out);
    }
    job.state = input.ok ? 'completed' : 'failed';
    job.lastError = input.ok ? '' : input.reason;
    job.leaseUntilMs = null;
    job.nextLocalMs = null;
    // One unit failed, others run on: they stop (gracefully: the pages stay, for status and reads); the job's
    // coordinator hears it failed and applies its restart policy.
    if (!input.ok && input.live === true) out.send.push({ to: 'units', unit: { op: 'kill', jobId: job.jobId, graceful: true } });
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
        endFreeze(this.cx, job, `freeze of epoch ${job.freezing.epoch} took over ${this.config.freezeTimeoutMs} ms`, out);
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
        onLocal(this.cx, job.jobId, false, 0, '', out);
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

  // ---- ending a job -------------------------------------------------------------

  private end(job: AgentJob, state: 'stopped' | 'fenced', why: string, graceful: boolean, out: ParticipantStep): void {
    if (job.freezing) endFreeze(this.cx, job, why, out);
    if (job.starting) {
      reply(out, job.starting.to, job.starting.reqId, refused(`job ${job.jobId} ${state} while starting`, 'aborted'));
      job.starting = null;
    }
    if (job.staged) dropStaged(job, out);
    job.state = state;
    job.leaseUntilMs = null;
    job.nextLocalMs = null;
    job.lastError = why;
    out.send.push({ to: 'units', unit: { op: 'kill', jobId: job.jobId, graceful } });
  }

  checkInvariants(): void {
    checkParticipant({ config: this.config, nowMs: this.nowMs, jobs: this.jobs, stops: this.stoppedBelow.size, incarnations: this.incarnations.size });
  }
}
