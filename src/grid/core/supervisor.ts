import { Monitor } from '../../detector/monitor.js';
import { RoundCoordinator } from '../../protocol/core/round.js';
import type { ClusterAnswer } from '../../protocol/messages.js';
import { checkGridInvariants } from './supervisor-checks.js';
import { clusterLost, onBeat, onRegister, verdicts } from './supervisor-clusters.js';
import { advanceRecovery, beginRecovery, onRestoreAnswer } from './supervisor-recovery.js';
import { checkFinal, lineWritten, roundStep, startRound } from './supervisor-rounds.js';
import { GridState, MAX_CHECKPOINT_WAITERS, type GJob } from './supervisor-state.js';
import type { GridClusterView, GridEvent, GridInput, GridJobRow, GridJobState, GridJobView, GridPersist, GridReply, GridStep, GridSupervisorConfig, SubmitRefusal } from './supervisor-types.js';

// The grid coordinator's job supervisor as a pure core: clusters' membership
// through the detector core, coordinated grid rounds through the round core
// (participants are clusters; the "manifest" is the recovery line in the
// catalog), and each job's lifecycle — submit, periodic rounds, recovery
// from a lost cluster, rollback of a share that was fenced or lost, the
// final round, resume after a restart — as deadlines and sends.
//
// Intuition: the catalog is the grid's memory and is written before anything
// that depends on it leaves (the driver persists, then sends): the highest
// epoch before a PREPARE names it, a recovery plan before a restore asks for
// it, a line before it counts. A lost cluster's units run elsewhere only
// after its lease and its agents' leases have surely lapsed; every share of
// the job then rolls back to the last line, and the moved units are adopted
// from the lost cluster's store, where the line says they were.
//
// Invariants (checkInvariants; tests cite them as G1..G6):
//  G1. A lost cluster's units are restored elsewhere no earlier than its
//      last grant + clusterLeaseMs + agentLeaseMs + margin.
//  G2. Every line names an epoch for every cluster that held units at its cut.
//  G3. Epochs only grow: the catalog's highest epoch is at least every line's
//      and every round's; a round's epoch is recorded before its PREPARE.
//  G4. A job is completed only after a line committed once every share had
//      reported completion.
//  G5. A job with a recovery in progress has no round running.
//  G6. Bounded: jobs ≤ maxJobs, lines ≤ KEEP_LINES per job.
//
// The parts: the state and its shared primitives (supervisor-state.ts), the
// clusters' registration, heartbeats and verdicts (supervisor-clusters.ts),
// the recovery machine (supervisor-recovery.ts), a job's rounds, its final
// round and checkpoint requests (supervisor-rounds.ts) and the invariant
// checks (supervisor-checks.ts); the catalog's resume, submits, clusters'
// answers, time, events and views are here.

export class GridSupervisor {
  private readonly st: GridState;
  private readonly monitor: Monitor;
  /** Calls issued by recent steps that persisted: if the persist fails, the driver never sent them. */
  private readonly stepCalls = new Map<number, { calls: number[]; replies: GridReply[] }>();

  /** agentLeases: what the catalog says each cluster that ever registered gives its agents (G1 after a restart). */
  constructor(private readonly config: GridSupervisorConfig, catalog: GridJobRow[], nowMs: number, agentLeases: ReadonlyMap<string, number> = new Map()) {
    this.monitor = new Monitor(config.detector);
    this.st = new GridState(config, nowMs, nowMs, agentLeases);
    for (const row of catalog) this.resume(row);
  }

  step(input: GridInput, nowMs: number): GridStep {
    if (nowMs < this.st.nowMs) throw new Error(`grid time went back: ${nowMs} < ${this.st.nowMs}`);
    this.st.nowMs = nowMs;
    const out: GridStep = { persist: [], send: [], reply: [] };
    this.st.stepNo += 1;
    this.st.issued = [];
    verdicts(this.st, this.monitor.step({ kind: 'tick' }, nowMs).changes, out);
    switch (input.kind) {
      case 'submit': this.onSubmit(input.reqId, input.jobId, input.units, input.intervalMs || this.config.checkpointIntervalMs, out); break;
      case 'clusterRegistered': onRegister(this.st, this.monitor, input, out); break;
      case 'checkpoint': this.onCheckpoint(input.reqId, input.jobId, out); break;
      case 'clusterHeartbeat': onBeat(this.st, this.monitor, input.hb, out); break;
      case 'clusterAnswer': this.onAnswer(input.reqId, input.answer, false, out); break;
      case 'clusterUnreachable': this.onAnswer(input.reqId, { kind: 'refused', reason: `unreachable: ${input.reason}` }, true, out); break;
      case 'persisted': if (input.what.lineOf) lineWritten(this.st, input.what.lineOf.jobId, input.what.lineOf.epoch, null, out); break;
      case 'persistFailed': this.onPersistFailed(input.what, input.reason, out); break;
      case 'tick': break;
    }
    this.onTime(out);
    if (out.persist.length > 0) {
      out.persist = [this.oneWrite(out.persist)];
      // Kept until the write is done: a failed one fails these calls and delivers these replies after all.
      this.stepCalls.set(this.st.stepNo, { calls: this.st.issued, replies: [...out.reply] });
      for (const k of [...this.stepCalls.keys()].slice(0, -64)) this.stepCalls.delete(k);
    }
    return out;
  }

  nextDeadline(): number | null {
    // nextStepMs: the detector also asks to be stepped every tick, to tell its own pauses from its peers' silence.
    let at: number | null = this.monitor.nextStepMs();
    const min = (x: number) => { at = at === null ? x : Math.min(at, x); };
    for (const j of this.st.jobs.values()) {
      const r = j.round.nextDeadlineMs();
      if (r !== null) min(r);
      // No round starts while a submit is unanswered: its time is then no deadline (a driver would spin on it).
      if (j.state === 'running' && !j.submit && j.round.status().phase === 'idle') min(j.nextRoundAtMs);
      // Past its lease wait, a recovery waits for a verdict (a heartbeat or a detector deadline), not a time.
      if (j.recovery?.phase === 'leaseWait' && j.recovery.safeAtMs > this.st.nowMs) min(j.recovery.safeAtMs);
      for (const t of j.recovery?.retry.values() ?? []) min(t);
    }
    for (const c of this.st.clusters.values()) if (!c.registered && c.verdict !== 'failed') min(this.st.startedAtMs + this.config.clusterLeaseMs);
    return at;
  }

  jobState(jobId: string): GridJobState | null {
    return this.st.jobs.get(jobId)?.state ?? null;
  }

  jobIds(): string[] {
    return [...this.st.jobs.keys()].sort();
  }

  jobView(jobId: string): GridJobView | null {
    const j = this.st.jobs.get(jobId);
    if (!j) return null;
    const s = j.round.status();
    return {
      jobId, state: j.state, units: [...j.units], clusters: new Map(j.clusters), lines: [...j.lines],
      roundsCommitted: s.roundsCommitted, roundsAborted: s.roundsAborted, recoveries: j.recoveries, lastError: j.lastError,
    };
  }

  clustersView(): GridClusterView[] {
    const status = new Map(this.monitor.status(this.st.nowMs).map((s) => [s.peer, s]));
    return [...this.st.clusters.values()].map((c) => ({
      clusterId: c.clusterId, incarnation: c.incarnation, verdict: c.verdict, registered: c.registered,
      phi: status.get(c.clusterId)?.phi ?? 0, silenceMs: status.get(c.clusterId)?.lastHeartbeatAgeMs ?? 0, freeUnits: c.freeUnits,
    })).sort((a, b) => (a.clusterId < b.clusterId ? -1 : a.clusterId > b.clusterId ? 1 : 0));
  }

  get failuresDetected(): number {
    return this.st.failuresDetected;
  }

  /** Recoveries of every job that ended well. */
  recoveries(): number {
    return [...this.st.jobs.values()].reduce((a, j) => a + j.recoveries, 0);
  }

  /** What happened since the last drain, oldest first (bounded: eventsDropped counts what was lost). */
  drainEvents(): GridEvent[] {
    return this.st.events.splice(0);
  }

  get eventsDropped(): number {
    return this.st.eventsDropped;
  }

  // ---- catalog ---------------------------------------------------------------------

  /**
   * A step's catalog writes as one: the catalog is written whole, one write after another, so a second write
   * of the step would replace the first; the rows as the step left them hold everything (a line in flight too).
   */
  private oneWrite(writes: GridPersist[]): GridPersist {
    const lines = writes.flatMap((w) => (w.lineOf ? [w.lineOf] : []));
    // One cluster answer ends at most one round: two lines in a step is a bug.
    if (lines.length > 1) throw new Error(`invariant broken: ${lines.length} lines in one grid step`);
    return { kind: 'catalog', jobs: this.st.rows(), reason: lines.length > 0 ? 'line' : 'state', step: this.st.stepNo, ...(lines[0] ? { lineOf: lines[0] } : {}) };
  }

  /**
   * The catalog write failed, so the driver sent none of that step's calls, nor its replies: each call fails
   * as undelivered, and the replies go out now (a request waiting on one is never left without an answer).
   */
  private onPersistFailed(what: GridPersist, reason: string, out: GridStep): void {
    const record = this.stepCalls.get(what.step);
    this.stepCalls.delete(what.step);
    for (const reqId of record?.calls ?? []) this.onAnswer(reqId, { kind: 'refused', reason: `not sent: the catalog write failed: ${reason}` }, true, out);
    out.reply.push(...(record?.replies ?? []));
    if (what.lineOf) lineWritten(this.st, what.lineOf.jobId, what.lineOf.epoch, reason, out);
  }

  private resume(row: GridJobRow): void {
    const job = this.newJob(row.jobId, row.units, new Map(Object.entries(row.clusters)), BigInt(row.highestEpoch), row.intervalMs || this.config.checkpointIntervalMs);
    job.lines = row.lines;
    job.state = row.state;
    job.lastError = row.lastError;
    job.recoveries = row.recoveries ?? 0;
    job.gen = row.gen ?? 0;
    for (const id of row.lost) job.lost.add(id);
    for (const id of new Set(job.clusters.values())) this.st.entry(id);
    if (job.state === 'recovering') job.state = 'running';
    if (job.state === 'running' && (job.lost.size > 0 || row.state === 'recovering')) beginRecovery(this.st, job, 'the grid restarted during a recovery', null, null);
  }

  private newJob(jobId: string, units: string[], clusters: Map<string, string>, highestEpoch: bigint, intervalMs: number): GJob {
    const job: GJob = {
      jobId, units: [...units].sort(), state: 'running', clusters, highestEpoch, lines: [], pendingLine: null, lost: new Set(),
      round: new RoundCoordinator(jobId, this.config.round, highestEpoch, this.config.mutants), recovery: null, nextRoundAtMs: this.st.nowMs + intervalMs,
      final: null, lastError: '', submit: null, gen: 0, doneAtCut: new Set(), finalMissed: false,
      recoveries: 0, intervalMs, shareLostAtMs: new Map(), checkpointNext: [], checkpointRound: [],
    };
    this.st.jobs.set(jobId, job);
    return job;
  }

  // ---- jobs ------------------------------------------------------------------------

  private onSubmit(reqId: number, jobId: string, units: string[], intervalMs: number, out: GridStep): void {
    const refuse = (code: SubmitRefusal, reason: string): void => void out.reply.push({ to: 'operator', kind: 'submitted', reqId, ok: false, reason, code });
    const old = this.st.jobs.get(jobId);
    if (old && (old.state === 'running' || old.state === 'recovering')) return refuse('already-exists', `job ${jobId} is already ${old.state}`);
    // An ended job is refused too, and left as it is: replacing it here made a completed job "running" with no
    // units anywhere, since its clusters refused the new share of an id they still hold (issue 8). Its id is
    // free again once the job is deleted.
    if (old) return refuse('already-exists', `job ${jobId} already exists (${old.state}); delete it first to reuse its id`);
    if (this.st.jobs.size >= this.config.maxJobs) return refuse('resource-exhausted', `at most ${this.config.maxJobs} jobs`);
    const alive = [...this.st.clusters.values()].filter((c) => c.registered && c.verdict === 'alive').map((c) => c.clusterId).sort();
    if (alive.length === 0) return refuse('unavailable', 'no alive cluster is registered');
    const sorted = [...units].sort();
    const job = this.newJob(jobId, sorted, new Map(sorted.map((u, i) => [u, alive[i % alive.length]!])), 0n, intervalMs);
    job.submit = { reqId, waiting: new Set() };
    this.st.emit({ kind: 'jobPlaced', jobId, clusters: Object.fromEntries(job.clusters) });
    this.st.emit({ kind: 'jobState', jobId, from: null, to: 'running', reason: 'submitted' });
    this.st.save(out);
    for (const c of this.st.clustersOf(job)) {
      job.submit.waiting.add(this.st.call(out, c, { kind: 'submitJob', jobId, units: this.st.unitsIn(job, c), gen: job.gen, leaseMs: this.config.clusterLeaseMs }, jobId, 'submit', null));
    }
  }

  /** CheckpointGridJob: the next round (at once when none runs), answered with its outcome. */
  private onCheckpoint(reqId: number, jobId: string, out: GridStep): void {
    const refuse = (code: 'not-found' | 'failed-precondition' | 'aborted', reason: string): void => void out.reply.push({ to: 'operator', kind: 'checkpointed', reqId, answer: { kind: 'refused', code, reason } });
    const job = this.st.jobs.get(jobId);
    if (!job) return refuse('not-found', `unknown job ${JSON.stringify(jobId)} on grid ${this.config.gridId}`);
    if (job.state !== 'running') return refuse('failed-precondition', `job ${jobId} is ${job.state}; it is not checkpointed now`);
    if (job.checkpointNext.length >= MAX_CHECKPOINT_WAITERS) return refuse('aborted', `at most ${MAX_CHECKPOINT_WAITERS} checkpoint requests of job ${jobId} wait`);
    job.checkpointNext.push(reqId);
    if (job.round.status().phase === 'idle') job.nextRoundAtMs = Math.min(job.nextRoundAtMs, this.st.nowMs);
  }

  // ---- clusters' answers -----------------------------------------------------------

  private onAnswer(reqId: number, answer: ClusterAnswer, unreachable: boolean, out: GridStep): void {
    const p = this.st.pending.get(reqId);
    if (!p) return;
    this.st.pending.delete(reqId);
    const job = this.st.jobs.get(p.jobId);
    if (!job) return;
    if (p.what === 'submit' || p.what === 'restore') {
      // An answer: the cluster leased itself the job by now. No answer: it may have got the call, or still get it,
      // within the call's timeout — the bound stays (pendingBound).
      const grant = unreachable ? p.sentAtMs + this.config.callTimeoutMs : this.st.nowMs;
      this.st.entry(p.cluster).lastGrantMs = Math.max(this.st.entry(p.cluster).lastGrantMs, grant);
    }
    if (p.what === 'submit') return this.onSubmitAnswer(job, reqId, p.cluster, answer, out);
    if (p.what === 'restore') return onRestoreAnswer(this.st, job, reqId, p.cluster, answer, unreachable, out);
    if (p.what !== 'round' || p.epoch === null) return;
    const participant = p.cluster;
    const epoch = p.epoch;
    // Only the running round's cut counts: a late PREPARED(done) of an aborted round says nothing of this one (G4).
    if (answer.kind === 'prepared' && answer.done && job.round.status().epoch === epoch) job.doneAtCut.add(participant);
    if (answer.kind === 'prepared') return roundStep(this.st, job, { kind: 'prepared', participant, epoch, pages: answer.pages, bytes: answer.bytes, digest: '' }, out);
    if (answer.kind === 'committed') return roundStep(this.st, job, { kind: 'durable', participant, epoch, part: { cluster: participant, epoch }, digest: '' }, out);
    const reason = 'reason' in answer ? answer.reason : answer.kind;
    if (p.kind === 'prepare') roundStep(this.st, job, { kind: 'prepareFailed', participant, epoch, reason }, out);
    else if (p.kind === 'commit') roundStep(this.st, job, { kind: 'durableFailed', participant, epoch, reason }, out);
  }

  private onSubmitAnswer(job: GJob, reqId: number, cluster: string, answer: ClusterAnswer, out: GridStep): void {
    if (!job.submit?.waiting.delete(reqId)) return;
    if (answer.kind !== 'ok') {
      // A share that did not start is a share to recover: the job is recorded, so roll it forward from nothing.
      return beginRecovery(this.st, job, `cluster ${cluster} did not start its share: ${'reason' in answer ? answer.reason : answer.kind}`, this.st.clusters.get(cluster)?.verdict === 'alive' ? null : cluster, out);
    }
    if (job.submit.waiting.size === 0) {
      out.reply.push({ to: 'operator', kind: 'submitted', reqId: job.submit.reqId, ok: true, reason: 'started' });
      job.submit = null;
    }
  }

  // ---- time -------------------------------------------------------------------------

  private onTime(out: GridStep): void {
    for (const c of this.st.clusters.values()) {
      if (!c.registered && c.verdict !== 'failed' && this.st.nowMs >= this.st.startedAtMs + this.config.clusterLeaseMs) {
        c.verdict = 'failed';
        this.st.failuresDetected += 1;
        clusterLost(this.st, c.clusterId, `cluster ${c.clusterId} did not register again after the grid restarted`, out);
      }
    }
    for (const job of this.st.jobs.values()) {
      const d = job.round.nextDeadlineMs();
      if (d !== null && this.st.nowMs >= d) roundStep(this.st, job, { kind: 'tick' }, out);
      if (job.recovery) advanceRecovery(this.st, job, out);
      if (job.state !== 'running' || job.submit || job.round.status().phase !== 'idle') continue;
      checkFinal(this.st, job, out);
      if (job.state === 'running' && this.st.nowMs >= job.nextRoundAtMs) startRound(this.st, job, out);
    }
  }

  checkInvariants(): void {
    checkGridInvariants(this.st);
  }
}

export type { GridPersist, GridStep };
