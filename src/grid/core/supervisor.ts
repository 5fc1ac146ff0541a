import { Monitor, type VerdictChange } from '../../detector/monitor.js';
import { RoundCoordinator } from '../../protocol/core/round.js';
import type { ClusterAnswer, Heartbeat } from '../../protocol/messages.js';
import { checkGridInvariants } from './supervisor-checks.js';
import { advanceRecovery, beginRecovery, onRestoreAnswer } from './supervisor-recovery.js';
import { checkFinal, lineWritten, roundStep, startRound } from './supervisor-rounds.js';
import { GridState, type GJob } from './supervisor-state.js';
import type { GridInput, GridJobRow, GridJobState, GridLine, GridPersist, GridStep, GridSupervisorConfig } from './supervisor-types.js';

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
// recovery machine (supervisor-recovery.ts), a job's rounds and its final
// round (supervisor-rounds.ts) and the invariant checks (supervisor-checks.ts);
// the catalog's resume, submits, membership, clusters' answers and time are
// here.

export class GridSupervisor {
  private readonly st: GridState;
  private readonly monitor: Monitor;
  /** Calls issued by recent steps that persisted: if the persist fails, the driver never sent them. */
  private readonly stepCalls = new Map<number, number[]>();
  failuresDetected = 0;

  constructor(private readonly config: GridSupervisorConfig, catalog: GridJobRow[], nowMs: number) {
    this.monitor = new Monitor(config.detector);
    this.st = new GridState(config, nowMs, nowMs);
    for (const row of catalog) this.resume(row);
  }

  step(input: GridInput, nowMs: number): GridStep {
    if (nowMs < this.st.nowMs) throw new Error(`grid time went back: ${nowMs} < ${this.st.nowMs}`);
    this.st.nowMs = nowMs;
    const out: GridStep = { persist: [], send: [], reply: [] };
    this.st.stepNo += 1;
    this.st.issued = [];
    this.verdicts(this.monitor.step({ kind: 'tick' }, nowMs).changes, out);
    switch (input.kind) {
      case 'submit': this.onSubmit(input.reqId, input.jobId, input.units, out); break;
      case 'clusterHeartbeat': this.onBeat(input.hb, out); break;
      case 'clusterAnswer': this.onAnswer(input.reqId, input.answer, false, out); break;
      case 'clusterUnreachable': this.onAnswer(input.reqId, { kind: 'refused', reason: `unreachable: ${input.reason}` }, true, out); break;
      case 'persisted': if (input.what.lineOf) lineWritten(this.st, input.what.lineOf.jobId, input.what.lineOf.epoch, null, out); break;
      case 'persistFailed': this.onPersistFailed(input.what, input.reason, out); break;
      case 'tick': break;
    }
    this.onTime(out);
    if (out.persist.length > 0) {
      for (const p of out.persist) p.step = this.st.stepNo;
      this.stepCalls.set(this.st.stepNo, this.st.issued);
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

  jobView(jobId: string): { state: GridJobState; lines: GridLine[]; clusters: Map<string, string>; lastError: string } | null {
    const j = this.st.jobs.get(jobId);
    return j ? { state: j.state, lines: [...j.lines], clusters: new Map(j.clusters), lastError: j.lastError } : null;
  }

  // ---- catalog ---------------------------------------------------------------------

  /** The catalog write failed, so the driver sent none of that step's calls: each fails as undelivered. */
  private onPersistFailed(what: GridPersist, reason: string, out: GridStep): void {
    for (const reqId of this.stepCalls.get(what.step) ?? []) this.onAnswer(reqId, { kind: 'refused', reason: `not sent: the catalog write failed: ${reason}` }, true, out);
    this.stepCalls.delete(what.step);
    if (what.lineOf) lineWritten(this.st, what.lineOf.jobId, what.lineOf.epoch, reason, out);
  }

  private resume(row: GridJobRow): void {
    const job = this.newJob(row.jobId, row.units, new Map(Object.entries(row.clusters)), BigInt(row.highestEpoch));
    job.lines = row.lines;
    job.state = row.state;
    job.lastError = row.lastError;
    for (const id of row.lost) job.lost.add(id);
    for (const id of new Set(job.clusters.values())) this.st.entry(id);
    if (job.state === 'recovering') job.state = 'running';
    if (job.state === 'running' && (job.lost.size > 0 || row.state === 'recovering')) beginRecovery(this.st, job, 'the grid restarted during a recovery', null, null);
  }

  private newJob(jobId: string, units: string[], clusters: Map<string, string>, highestEpoch: bigint): GJob {
    const job: GJob = {
      jobId, units: [...units].sort(), state: 'running', clusters, highestEpoch, lines: [], lost: new Set(),
      round: new RoundCoordinator(jobId, this.config.round, highestEpoch, this.config.mutants), recovery: null, nextRoundAtMs: this.st.nowMs + this.config.checkpointIntervalMs,
      final: null, lastError: '', submit: null, gen: 0, doneAtCut: new Set(), finalMissed: false,
    };
    this.st.jobs.set(jobId, job);
    return job;
  }

  // ---- jobs ------------------------------------------------------------------------

  private onSubmit(reqId: number, jobId: string, units: string[], out: GridStep): void {
    const answer = (ok: boolean, reason: string): void => void out.reply.push({ to: 'operator', kind: 'submitted', reqId, ok, reason });
    const old = this.st.jobs.get(jobId);
    if (old && (old.state === 'running' || old.state === 'recovering')) return answer(false, `job ${jobId} is already ${old.state}`);
    if (this.st.jobs.size >= this.config.maxJobs && !old) return answer(false, `at most ${this.config.maxJobs} jobs`);
    const alive = [...this.st.clusters.values()].filter((c) => c.registered && c.verdict === 'alive').map((c) => c.clusterId).sort();
    if (alive.length === 0) return answer(false, 'no alive cluster is registered');
    const sorted = [...units].sort();
    const job = this.newJob(jobId, sorted, new Map(sorted.map((u, i) => [u, alive[i % alive.length]!])), old?.highestEpoch ?? 0n);
    job.submit = { reqId, waiting: new Set() };
    this.st.save(out);
    for (const c of this.st.clustersOf(job)) {
      this.st.entry(c).lastGrantMs = Math.max(this.st.entry(c).lastGrantMs, this.st.nowMs + this.config.callTimeoutMs);
      job.submit.waiting.add(this.st.call(out, c, { kind: 'submitJob', jobId, units: this.st.unitsIn(job, c), gen: job.gen }, jobId, 'submit', null));
    }
  }

  private onBeat(hb: Heartbeat, out: GridStep): void {
    let c = this.st.clusters.get(hb.member);
    const reply = (known: boolean, leasedJobs: string[]): void => void out.reply.push({ to: hb.member, kind: 'beat', seq: hb.seq, answer: { known, leasedJobs, leaseMs: this.config.clusterLeaseMs } });
    if (c && c.registered && hb.incarnation < c.incarnation) return reply(false, []);
    if (!c || !c.registered || hb.incarnation > c.incarnation || c.verdict === 'failed') {
      const restarted = c !== undefined && c.registered && hb.incarnation > c.incarnation && c.verdict !== 'failed';
      const sameBack = c !== undefined && c.registered && c.incarnation === hb.incarnation;
      const resumed = c !== undefined && !c.registered;
      c = { clusterId: hb.member, incarnation: hb.incarnation, verdict: 'alive', lastGrantMs: c?.lastGrantMs ?? this.st.nowMs, freeUnits: hb.freeUnits, registered: true, reported: new Map() };
      this.st.clusters.set(hb.member, c);
      if (sameBack) this.monitor.step({ kind: 'unwatch', peer: hb.member }, this.st.nowMs);
      this.verdicts(this.monitor.step({ kind: 'watch', peer: hb.member, incarnation: hb.incarnation }, this.st.nowMs).changes, out);
      // A new incarnation knows none of the old one's jobs: for them it is lost.
      if (restarted) this.clusterLost(hb.member, `cluster ${hb.member} restarted`, out);
      // Back to a grid that restarted: a share it does not know was lost with an incarnation this grid never saw.
      if (resumed) this.forgotten(hb, out);
    }
    const r = this.monitor.step({ kind: 'heartbeat', peer: hb.member, incarnation: hb.incarnation, sentSeq: hb.seq }, this.st.nowMs);
    this.verdicts(r.changes, out);
    if (r.ignored !== null || c.verdict === 'failed') return reply(false, []);
    c.freeUnits = hb.freeUnits;
    c.reported = new Map(hb.jobs.filter((j) => j.gen === this.st.jobs.get(j.jobId)?.gen).map((j) => [j.jobId, j.state]));
    const leased = this.leasedOn(hb.member);
    // max: a submit or restore still in flight may have set a later bound (send + deadline) than this answer (G1).
    if (leased.length > 0) c.lastGrantMs = Math.max(c.lastGrantMs, this.st.nowMs);
    reply(true, leased);
    this.onShares(hb.member, out);
  }

  private leasedOn(clusterId: string): string[] {
    return [...this.st.jobs.values()]
      .filter((j) => (j.state === 'running' || j.state === 'recovering') && !j.lost.has(clusterId) && this.st.clustersOf(j).includes(clusterId))
      .map((j) => j.jobId).sort();
  }

  /** What a cluster's heartbeat says of its shares: fenced, failed or forgotten ones roll the job back; completion is noted. */
  private onShares(clusterId: string, out: GridStep): void {
    for (const job of this.st.jobs.values()) {
      if (job.state !== 'running' || job.recovery || job.submit || !this.st.clustersOf(job).includes(clusterId)) continue;
      const share = this.st.clusters.get(clusterId)!.reported.get(job.jobId);
      // (The old grid acted on fenced shares only: a failed one then ran aborted rounds forever.)
      if (share === 'fenced' || (share === 'failed' && !this.st.mutant('restore-onto-dead-node')) || share === 'stopped') {
        beginRecovery(this.st, job, `cluster ${clusterId} has the job ${share}`, null, out);
      }
    }
  }

  private forgotten(hb: Heartbeat, out: GridStep): void {
    const known = new Set(hb.jobs.map((j) => j.jobId));
    for (const job of this.st.jobs.values()) {
      if (job.state === 'running' && !job.recovery && this.st.clustersOf(job).includes(hb.member) && !known.has(job.jobId)) {
        beginRecovery(this.st, job, `cluster ${hb.member} no longer has the job`, null, out);
      }
    }
  }

  private verdicts(changes: VerdictChange[], out: GridStep | null): void {
    for (const ch of changes) {
      const c = this.st.clusters.get(ch.peer);
      if (!c || c.incarnation !== ch.incarnation) continue;
      c.verdict = ch.to;
      if (ch.to !== 'failed') continue;
      this.failuresDetected += 1;
      this.clusterLost(ch.peer, `cluster ${ch.peer} declared failed`, out);
    }
  }

  private clusterLost(clusterId: string, reason: string, out: GridStep | null): void {
    for (const job of this.st.jobs.values()) {
      if ((job.state !== 'running' && job.state !== 'recovering') || !this.st.clustersOf(job).includes(clusterId)) continue;
      beginRecovery(this.st, job, reason, clusterId, out);
    }
  }

  // ---- clusters' answers -----------------------------------------------------------

  private onAnswer(reqId: number, answer: ClusterAnswer, unreachable: boolean, out: GridStep): void {
    const p = this.st.pending.get(reqId);
    if (!p) return;
    this.st.pending.delete(reqId);
    const job = this.st.jobs.get(p.jobId);
    if (!job) return;
    if (p.what === 'submit' || p.what === 'restore') this.st.entry(p.cluster).lastGrantMs = Math.max(this.st.entry(p.cluster).lastGrantMs, this.st.nowMs);
    if (p.what === 'submit') return this.onSubmitAnswer(job, reqId, p.cluster, answer, out);
    if (p.what === 'restore') return onRestoreAnswer(this.st, job, reqId, p.cluster, answer, unreachable, out);
    if (p.what !== 'round' || p.epoch === null) return;
    const participant = p.cluster;
    const epoch = p.epoch;
    if (answer.kind === 'prepared' && answer.done) job.doneAtCut.add(participant);
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
        this.clusterLost(c.clusterId, `cluster ${c.clusterId} did not register again after the grid restarted`, out);
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
