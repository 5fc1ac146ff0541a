import { Monitor, type Verdict, type VerdictChange } from '../../detector/monitor.js';
import { leaseMarginMs, leaseSafeAfter } from '../../detector/lease.js';
import { RoundCoordinator, type RoundInput, type RoundReply, type RoundStep } from '../../protocol/core/round.js';
import { planGridRecovery, type ClusterRestore, type GridRecoveryPlan } from './recovery-plan.js';
import type { ClusterAnswer, ClusterRequest, Heartbeat, MemberJobState } from '../../protocol/messages.js';
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

const KEEP_LINES = 8;

interface ClusterEntry {
  clusterId: string;
  incarnation: bigint;
  verdict: Verdict;
  lastGrantMs: number;
  freeUnits: number;
  registered: boolean;
  reported: Map<string, MemberJobState>;
}

interface Recovery {
  reason: string;
  attempt: number;
  phase: 'leaseWait' | 'restoring';
  safeAtMs: number;
  waiting: Map<number, string>;
  retry: Map<string, number>;
  /** What each cluster restores, once planned (core/recovery-plan.ts). */
  restores: Map<string, ClusterRestore>;
}

interface GJob {
  jobId: string;
  units: string[];
  state: GridJobState;
  clusters: Map<string, string>;
  highestEpoch: bigint;
  lines: GridLine[];
  lost: Set<string>;
  round: RoundCoordinator;
  recovery: Recovery | null;
  nextRoundAtMs: number;
  final: { attempts: number } | null;
  lastError: string;
  submit: { reqId: number; waiting: Set<number> } | null;
  /** A final round committed while a share was not done at its cut (its report predated a restart of its own). */
  finalMissed: boolean;
  /** Bumped by every submit or restore: a share's report counts only if it names the current one. */
  gen: number;
  /** Clusters whose PREPARED of the running round said their share had ended. */
  doneAtCut: Set<string>;
}

type Pending = { jobId: string; cluster: string; kind: ClusterRequest['kind']; epoch: bigint | null; what: 'round' | 'restore' | 'submit' | 'stop' };

export class GridSupervisor {
  private readonly clusters = new Map<string, ClusterEntry>();
  private readonly jobs = new Map<string, GJob>();
  private readonly monitor: Monitor;
  private readonly pending = new Map<number, Pending>();
  private nextReq = 1;
  private nowMs: number;
  private stepNo = 0;
  /** Calls issued by recent steps that persisted: if the persist fails, the driver never sent them. */
  private readonly stepCalls = new Map<number, number[]>();
  private issued: number[] = [];
  private readonly startedAtMs: number;
  failuresDetected = 0;

  constructor(private readonly config: GridSupervisorConfig, catalog: GridJobRow[], nowMs: number) {
    this.monitor = new Monitor(config.detector);
    this.nowMs = nowMs;
    this.startedAtMs = nowMs;
    for (const row of catalog) this.resume(row);
  }

  private mutant(name: string): boolean {
    return this.config.mutants?.has(name) ?? false;
  }

  step(input: GridInput, nowMs: number): GridStep {
    if (nowMs < this.nowMs) throw new Error(`grid time went back: ${nowMs} < ${this.nowMs}`);
    this.nowMs = nowMs;
    const out: GridStep = { persist: [], send: [], reply: [] };
    this.stepNo += 1;
    this.issued = [];
    this.verdicts(this.monitor.step({ kind: 'tick' }, nowMs).changes, out);
    switch (input.kind) {
      case 'submit': this.onSubmit(input.reqId, input.jobId, input.units, out); break;
      case 'clusterHeartbeat': this.onBeat(input.hb, out); break;
      case 'clusterAnswer': this.onAnswer(input.reqId, input.answer, false, out); break;
      case 'clusterUnreachable': this.onAnswer(input.reqId, { kind: 'refused', reason: `unreachable: ${input.reason}` }, true, out); break;
      case 'persisted': if (input.what.lineOf) this.lineWritten(input.what.lineOf.jobId, input.what.lineOf.epoch, null, out); break;
      case 'persistFailed': this.onPersistFailed(input.what, input.reason, out); break;
      case 'tick': break;
    }
    this.onTime(out);
    if (out.persist.length > 0) {
      for (const p of out.persist) p.step = this.stepNo;
      this.stepCalls.set(this.stepNo, this.issued);
      for (const k of [...this.stepCalls.keys()].slice(0, -64)) this.stepCalls.delete(k);
    }
    return out;
  }

  nextDeadline(): number | null {
    // nextStepMs: the detector also asks to be stepped every tick, to tell its own pauses from its peers' silence.
    let at: number | null = this.monitor.nextStepMs();
    const min = (x: number) => { at = at === null ? x : Math.min(at, x); };
    for (const j of this.jobs.values()) {
      const r = j.round.nextDeadlineMs();
      if (r !== null) min(r);
      // No round starts while a submit is unanswered: its time is then no deadline (a driver would spin on it).
      if (j.state === 'running' && !j.submit && j.round.status().phase === 'idle') min(j.nextRoundAtMs);
      // Past its lease wait, a recovery waits for a verdict (a heartbeat or a detector deadline), not a time.
      if (j.recovery?.phase === 'leaseWait' && j.recovery.safeAtMs > this.nowMs) min(j.recovery.safeAtMs);
      for (const t of j.recovery?.retry.values() ?? []) min(t);
    }
    for (const c of this.clusters.values()) if (!c.registered && c.verdict !== 'failed') min(this.startedAtMs + this.config.clusterLeaseMs);
    return at;
  }

  jobState(jobId: string): GridJobState | null {
    return this.jobs.get(jobId)?.state ?? null;
  }

  jobView(jobId: string): { state: GridJobState; lines: GridLine[]; clusters: Map<string, string>; lastError: string } | null {
    const j = this.jobs.get(jobId);
    return j ? { state: j.state, lines: [...j.lines], clusters: new Map(j.clusters), lastError: j.lastError } : null;
  }

  // ---- catalog ---------------------------------------------------------------------

  private rows(): GridJobRow[] {
    return [...this.jobs.values()].map((j) => ({
      jobId: j.jobId, units: j.units, state: j.state, clusters: Object.fromEntries(j.clusters), highestEpoch: String(j.highestEpoch),
      lines: j.lines, lost: [...j.lost], lastError: j.lastError,
    }));
  }

  private save(out: GridStep): void {
    out.persist.push({ kind: 'catalog', jobs: this.rows(), reason: 'state', step: this.stepNo });
  }

  /** The catalog write failed, so the driver sent none of that step's calls: each fails as undelivered. */
  private onPersistFailed(what: GridPersist, reason: string, out: GridStep): void {
    for (const reqId of this.stepCalls.get(what.step) ?? []) this.onAnswer(reqId, { kind: 'refused', reason: `not sent: the catalog write failed: ${reason}` }, true, out);
    this.stepCalls.delete(what.step);
    if (what.lineOf) this.lineWritten(what.lineOf.jobId, what.lineOf.epoch, reason, out);
  }

  private resume(row: GridJobRow): void {
    const job = this.newJob(row.jobId, row.units, new Map(Object.entries(row.clusters)), BigInt(row.highestEpoch));
    job.lines = row.lines;
    job.state = row.state;
    job.lastError = row.lastError;
    for (const id of row.lost) job.lost.add(id);
    for (const id of new Set(job.clusters.values())) this.entry(id);
    if (job.state === 'recovering') job.state = 'running';
    if (job.state === 'running' && (job.lost.size > 0 || row.state === 'recovering')) this.beginRecovery(job, 'the grid restarted during a recovery', null, null);
  }

  private entry(id: string): ClusterEntry {
    let c = this.clusters.get(id);
    if (!c) {
      // Unknown to this incarnation: whatever the previous one granted ended by its death, before our start.
      c = { clusterId: id, incarnation: 0n, verdict: 'alive', lastGrantMs: this.startedAtMs, freeUnits: 0, registered: false, reported: new Map() };
      this.clusters.set(id, c);
    }
    return c;
  }

  private newJob(jobId: string, units: string[], clusters: Map<string, string>, highestEpoch: bigint): GJob {
    const job: GJob = {
      jobId, units: [...units].sort(), state: 'running', clusters, highestEpoch, lines: [], lost: new Set(),
      round: new RoundCoordinator(jobId, this.config.round, highestEpoch, this.config.mutants), recovery: null, nextRoundAtMs: this.nowMs + this.config.checkpointIntervalMs,
      final: null, lastError: '', submit: null, gen: 0, doneAtCut: new Set(), finalMissed: false,
    };
    this.jobs.set(jobId, job);
    return job;
  }

  // ---- jobs ------------------------------------------------------------------------

  private onSubmit(reqId: number, jobId: string, units: string[], out: GridStep): void {
    const answer = (ok: boolean, reason: string): void => void out.reply.push({ to: 'operator', kind: 'submitted', reqId, ok, reason });
    const old = this.jobs.get(jobId);
    if (old && (old.state === 'running' || old.state === 'recovering')) return answer(false, `job ${jobId} is already ${old.state}`);
    if (this.jobs.size >= this.config.maxJobs && !old) return answer(false, `at most ${this.config.maxJobs} jobs`);
    const alive = [...this.clusters.values()].filter((c) => c.registered && c.verdict === 'alive').map((c) => c.clusterId).sort();
    if (alive.length === 0) return answer(false, 'no alive cluster is registered');
    const sorted = [...units].sort();
    const job = this.newJob(jobId, sorted, new Map(sorted.map((u, i) => [u, alive[i % alive.length]!])), old?.highestEpoch ?? 0n);
    job.submit = { reqId, waiting: new Set() };
    this.save(out);
    for (const c of this.clustersOf(job)) {
      this.entry(c).lastGrantMs = Math.max(this.entry(c).lastGrantMs, this.nowMs + this.config.callTimeoutMs);
      job.submit.waiting.add(this.call(out, c, { kind: 'submitJob', jobId, units: this.unitsIn(job, c), gen: job.gen }, jobId, 'submit', null));
    }
  }

  private onBeat(hb: Heartbeat, out: GridStep): void {
    let c = this.clusters.get(hb.member);
    const reply = (known: boolean, leasedJobs: string[]): void => void out.reply.push({ to: hb.member, kind: 'beat', seq: hb.seq, answer: { known, leasedJobs, leaseMs: this.config.clusterLeaseMs } });
    if (c && c.registered && hb.incarnation < c.incarnation) return reply(false, []);
    if (!c || !c.registered || hb.incarnation > c.incarnation || c.verdict === 'failed') {
      const restarted = c !== undefined && c.registered && hb.incarnation > c.incarnation && c.verdict !== 'failed';
      const sameBack = c !== undefined && c.registered && c.incarnation === hb.incarnation;
      const resumed = c !== undefined && !c.registered;
      c = { clusterId: hb.member, incarnation: hb.incarnation, verdict: 'alive', lastGrantMs: c?.lastGrantMs ?? this.nowMs, freeUnits: hb.freeUnits, registered: true, reported: new Map() };
      this.clusters.set(hb.member, c);
      if (sameBack) this.monitor.step({ kind: 'unwatch', peer: hb.member }, this.nowMs);
      this.verdicts(this.monitor.step({ kind: 'watch', peer: hb.member, incarnation: hb.incarnation }, this.nowMs).changes, out);
      // A new incarnation knows none of the old one's jobs: for them it is lost.
      if (restarted) this.clusterLost(hb.member, `cluster ${hb.member} restarted`, out);
      // Back to a grid that restarted: a share it does not know was lost with an incarnation this grid never saw.
      if (resumed) this.forgotten(hb, out);
    }
    const r = this.monitor.step({ kind: 'heartbeat', peer: hb.member, incarnation: hb.incarnation, sentSeq: hb.seq }, this.nowMs);
    this.verdicts(r.changes, out);
    if (r.ignored !== null || c.verdict === 'failed') return reply(false, []);
    c.freeUnits = hb.freeUnits;
    c.reported = new Map(hb.jobs.filter((j) => j.gen === this.jobs.get(j.jobId)?.gen).map((j) => [j.jobId, j.state]));
    const leased = this.leasedOn(hb.member);
    // max: a submit or restore still in flight may have set a later bound (send + deadline) than this answer (G1).
    if (leased.length > 0) c.lastGrantMs = Math.max(c.lastGrantMs, this.nowMs);
    reply(true, leased);
    this.onShares(hb.member, out);
  }

  private leasedOn(clusterId: string): string[] {
    return [...this.jobs.values()]
      .filter((j) => (j.state === 'running' || j.state === 'recovering') && !j.lost.has(clusterId) && this.clustersOf(j).includes(clusterId))
      .map((j) => j.jobId).sort();
  }

  /** What a cluster's heartbeat says of its shares: fenced, failed or forgotten ones roll the job back; completion is noted. */
  private onShares(clusterId: string, out: GridStep): void {
    for (const job of this.jobs.values()) {
      if (job.state !== 'running' || job.recovery || job.submit || !this.clustersOf(job).includes(clusterId)) continue;
      const st = this.clusters.get(clusterId)!.reported.get(job.jobId);
      // (The old grid acted on fenced shares only: a failed one then ran aborted rounds forever.)
      if (st === 'fenced' || (st === 'failed' && !this.mutant('restore-onto-dead-node')) || st === 'stopped') {
        this.beginRecovery(job, `cluster ${clusterId} has the job ${st}`, null, out);
      }
    }
  }

  private forgotten(hb: Heartbeat, out: GridStep): void {
    const known = new Set(hb.jobs.map((j) => j.jobId));
    for (const job of this.jobs.values()) {
      if (job.state === 'running' && !job.recovery && this.clustersOf(job).includes(hb.member) && !known.has(job.jobId)) {
        this.beginRecovery(job, `cluster ${hb.member} no longer has the job`, null, out);
      }
    }
  }

  private verdicts(changes: VerdictChange[], out: GridStep | null): void {
    for (const ch of changes) {
      const c = this.clusters.get(ch.peer);
      if (!c || c.incarnation !== ch.incarnation) continue;
      c.verdict = ch.to;
      if (ch.to !== 'failed') continue;
      this.failuresDetected += 1;
      this.clusterLost(ch.peer, `cluster ${ch.peer} declared failed`, out);
    }
  }

  private clusterLost(clusterId: string, reason: string, out: GridStep | null): void {
    for (const job of this.jobs.values()) {
      if ((job.state !== 'running' && job.state !== 'recovering') || !this.clustersOf(job).includes(clusterId)) continue;
      this.beginRecovery(job, reason, clusterId, out);
    }
  }

  // ---- rounds -----------------------------------------------------------------------

  private startRound(job: GJob, out: GridStep): void {
    const last = job.lines.at(-1)?.epoch ?? null;
    const epoch = this.mutant('reuse-epoch-number') ? (last ?? 0n) + 1n : job.highestEpoch + 1n;
    if (this.mutant('reuse-epoch-number')) job.round = new RoundCoordinator(job.jobId, this.config.round, epoch - 1n, this.config.mutants);
    job.highestEpoch = epoch > job.highestEpoch ? epoch : job.highestEpoch;
    this.save(out); // G3: the epoch is on disk before its PREPARE leaves
    job.doneAtCut.clear();
    this.roundStep(job, {
      kind: 'start', roundId: `${job.jobId}-g${epoch}`, jobId: job.jobId, epoch, parentEpoch: last,
      participants: this.clustersOf(job), full: last === null,
    }, out);
  }

  private roundStep(job: GJob, input: RoundInput, out: GridStep): void {
    this.applyRound(job, job.round.step(input, this.nowMs), out);
  }

  private applyRound(job: GJob, s: RoundStep, out: GridStep): void {
    for (const p of s.persist) {
      const line: GridLine = {
        epoch: p.epoch,
        clusterEpochs: Object.fromEntries(p.parts.map((x) => [x.participant, String(p.epoch)])),
        unitClusters: Object.fromEntries(job.clusters),
      };
      const rows = this.rows().map((r) => (r.jobId === job.jobId ? { ...r, lines: [...r.lines, line].slice(-KEEP_LINES) } : r));
      out.persist.push({ kind: 'catalog', jobs: rows, reason: 'line', step: this.stepNo, lineOf: { jobId: job.jobId, epoch: p.epoch } });
    }
    for (const a of s.send) {
      const req: ClusterRequest = a.kind === 'prepare'
        ? { kind: 'prepare', jobId: a.jobId, epoch: a.epoch, parentEpoch: a.parentEpoch }
        : { kind: a.kind, jobId: a.jobId, epoch: a.epoch };
      this.call(out, a.to, req, job.jobId, 'round', a.epoch);
    }
    if (s.reply) this.onRoundEnd(job, s.reply, out);
  }

  private lineWritten(jobId: string, epoch: bigint, error: string | null, out: GridStep): void {
    const job = this.jobs.get(jobId);
    if (!job) return;
    if (error === null && job.round.status().epoch === epoch) {
      job.lines = [...job.lines, { epoch, clusterEpochs: Object.fromEntries(this.clustersOf(job).map((c) => [c, String(epoch)])), unitClusters: Object.fromEntries(job.clusters) }].slice(-KEEP_LINES);
    }
    this.roundStep(job, error === null ? { kind: 'manifestWritten', epoch } : { kind: 'manifestFailed', epoch, reason: error }, out);
  }

  private onRoundEnd(job: GJob, r: RoundReply, out: GridStep): void {
    if (r.kind === 'prepareDone') return;
    job.nextRoundAtMs = this.nowMs + this.config.checkpointIntervalMs;
    if (r.kind === 'aborted') job.lastError = `grid round ${r.epoch} aborted in ${r.phase}: ${r.reason}`;
    if (!job.final) return;
    const ended = this.clustersOf(job).every((c) => job.doneAtCut.has(c));
    if (r.kind === 'committed' && !ended) {
      // A share reported done from before a restart of its own: not the end yet (G4).
      job.final = null;
      job.finalMissed = true;
      return;
    }
    if (r.kind === 'committed') {
      job.state = 'completed';
      job.lastError = `completed; its end state is line ${r.epoch}`;
      for (const c of this.clustersOf(job)) this.call(out, c, { kind: 'stopJob', jobId: job.jobId }, job.jobId, 'stop', null);
      this.save(out);
      return;
    }
    job.final.attempts += 1;
    job.nextRoundAtMs = this.nowMs + this.config.retryMs;
    if (job.final.attempts >= this.config.maxFinalAttempts) {
      job.state = 'failed';
      job.lastError = `the final round failed ${job.final.attempts} times: the job's end state is in no epoch (${job.lastError})`;
      this.save(out);
    }
  }

  // ---- recovery ---------------------------------------------------------------------

  private beginRecovery(job: GJob, reason: string, lostCluster: string | null, out: GridStep | null, notBeforeMs = 0): void {
    if (job.state !== 'running' && job.state !== 'recovering') return;
    if (out) {
      if (lostCluster !== null) this.roundStep(job, { kind: 'participantFailed', participant: lostCluster, reason }, out);
      const s = job.round.status();
      if (s.phase !== 'idle' && s.epoch !== null) this.roundStep(job, { kind: 'cancel', epoch: s.epoch, reason }, out);
    }
    if (lostCluster !== null) job.lost.add(lostCluster);
    job.state = 'recovering';
    job.final = null;
    job.lastError = reason;
    const margin = leaseMarginMs(this.config.clusterLeaseMs + this.config.agentLeaseMs);
    const safeAtMs = Math.max(this.nowMs, notBeforeMs, ...[...job.lost].map((id) => leaseSafeAfter(this.entry(id).lastGrantMs, this.config.clusterLeaseMs, this.config.agentLeaseMs, margin)));
    job.recovery = { reason, attempt: (job.recovery?.attempt ?? 0) + 1, phase: 'leaseWait', safeAtMs, waiting: new Map(), retry: new Map(), restores: new Map() };
    if (job.submit) {
      if (out) out.reply.push({ to: 'operator', kind: 'submitted', reqId: job.submit.reqId, ok: true, reason: `started; recovering: ${reason}` });
      job.submit = null;
    }
    if (out) {
      this.save(out);
      if (job.recovery.attempt > this.config.maxRecoveryAttempts) this.failJob(job, `${reason}: gave up after ${this.config.maxRecoveryAttempts} attempts`, out);
    }
  }

  private advanceRecovery(job: GJob, out: GridStep): void {
    const r = job.recovery;
    if (!r) return;
    if (r.phase === 'leaseWait' && this.nowMs >= r.safeAtMs) {
      if (job.round.status().phase !== 'idle') return;
      const plan = this.plan(job);
      if (plan === 'wait') return;
      if (!plan.ok) return this.failJob(job, plan.reason, out);
      job.clusters = plan.clusters;
      r.restores = plan.restores;
      job.gen += 1;
      for (const c of this.clusters.values()) c.reported.delete(job.jobId);
      r.phase = 'restoring';
      this.save(out); // the plan is on disk before any restore is asked
      for (const c of this.clustersOf(job)) this.askRestore(job, c, out);
      return;
    }
    if (r.phase === 'restoring') {
      for (const [c, at] of r.retry) {
        if (this.nowMs < at) continue;
        r.retry.delete(c);
        this.askRestore(job, c, out);
      }
      if (r.waiting.size === 0 && r.retry.size === 0) this.finishRecovery(job, out);
    }
  }

  /**
   * The plan (planGridRecovery, the grid's one recovery planner): lost
   * clusters' units go to the alive cluster with the most room, every share
   * rolls back to the last line, moved units adopted from the store that
   * held them at its cut. Units stay where a cluster is suspected or has not
   * registered again yet: only a lost one's lease has been waited out (G1),
   * so the plan waits for a verdict either way.
   */
  private plan(job: GJob): GridRecoveryPlan | 'wait' {
    const alive = (id: string) => { const c = this.clusters.get(id); return c !== undefined && c.registered && c.verdict === 'alive' && !job.lost.has(id); };
    if (this.clustersOf(job).some((id) => !job.lost.has(id) && !alive(id))) return 'wait';
    const line = job.lines.at(-1);
    const free = new Map([...this.clusters.values()].filter((c) => alive(c.clusterId)).map((c) => [c.clusterId, c.freeUnits]));
    return planGridRecovery({
      clusters: job.clusters, lost: job.lost, free,
      line: line ? { clusterEpochs: Object.fromEntries(Object.entries(line.clusterEpochs).map(([c, e]) => [c, BigInt(e)])), unitClusters: line.unitClusters } : null,
      // A cluster's store is named by its cluster id (a store outlives its coordinator).
      stores: new Map([...this.clusters.keys()].map((c) => [c, c])),
    });
  }

  private askRestore(job: GJob, c: string, out: GridStep): void {
    const r = job.recovery!.restores.get(c) ?? { units: this.unitsIn(job, c), epoch: null, adopt: [] };
    const adopt = r.adopt.map((a) => ({ fromCluster: a.fromCluster, epoch: a.epoch, units: a.unitIds }));
    const reqId = this.call(out, c, { kind: 'restoreJob', jobId: job.jobId, units: r.units, epoch: r.epoch, adopt, gen: job.gen }, job.jobId, 'restore', null);
    job.recovery!.waiting.set(reqId, c);
    this.entry(c).lastGrantMs = Math.max(this.entry(c).lastGrantMs, this.nowMs + this.config.callTimeoutMs);
  }

  private finishRecovery(job: GJob, out: GridStep): void {
    job.recovery = null;
    job.lost.clear();
    job.state = 'running';
    job.nextRoundAtMs = this.nowMs;
    this.save(out);
  }

  private failJob(job: GJob, reason: string, out: GridStep): void {
    const s = job.round.status();
    if (s.phase !== 'idle' && s.epoch !== null) this.roundStep(job, { kind: 'cancel', epoch: s.epoch, reason }, out);
    job.recovery = null;
    job.state = 'failed';
    job.lastError = reason;
    for (const c of this.clustersOf(job)) if (!job.lost.has(c)) this.call(out, c, { kind: 'stopJob', jobId: job.jobId }, job.jobId, 'stop', null);
    this.save(out);
  }

  // ---- calls ------------------------------------------------------------------------

  private call(out: GridStep, to: string, req: ClusterRequest, jobId: string, what: Pending['what'], epoch: bigint | null): number {
    const reqId = this.nextReq++;
    this.issued.push(reqId);
    this.pending.set(reqId, { jobId, cluster: to, kind: req.kind, epoch, what });
    out.send.push({ to, call: { reqId, from: this.config.gridId, incarnation: this.config.incarnation, req } });
    return reqId;
  }

  private onAnswer(reqId: number, answer: ClusterAnswer, unreachable: boolean, out: GridStep): void {
    const p = this.pending.get(reqId);
    if (!p) return;
    this.pending.delete(reqId);
    const job = this.jobs.get(p.jobId);
    if (!job) return;
    if (p.what === 'submit' || p.what === 'restore') this.entry(p.cluster).lastGrantMs = Math.max(this.entry(p.cluster).lastGrantMs, this.nowMs);
    if (p.what === 'submit') return this.onSubmitAnswer(job, reqId, p.cluster, answer, out);
    if (p.what === 'restore') return this.onRestoreAnswer(job, reqId, p.cluster, answer, unreachable, out);
    if (p.what !== 'round' || p.epoch === null) return;
    const participant = p.cluster;
    const epoch = p.epoch;
    if (answer.kind === 'prepared' && answer.done) job.doneAtCut.add(participant);
    if (answer.kind === 'prepared') return this.roundStep(job, { kind: 'prepared', participant, epoch, pages: answer.pages, bytes: answer.bytes, digest: '' }, out);
    if (answer.kind === 'committed') return this.roundStep(job, { kind: 'durable', participant, epoch, part: { cluster: participant, epoch }, digest: '' }, out);
    const reason = 'reason' in answer ? answer.reason : answer.kind;
    if (p.kind === 'prepare') this.roundStep(job, { kind: 'prepareFailed', participant, epoch, reason }, out);
    else if (p.kind === 'commit') this.roundStep(job, { kind: 'durableFailed', participant, epoch, reason }, out);
  }

  private onSubmitAnswer(job: GJob, reqId: number, cluster: string, answer: ClusterAnswer, out: GridStep): void {
    if (!job.submit?.waiting.delete(reqId)) return;
    if (answer.kind !== 'ok') {
      // A share that did not start is a share to recover: the job is recorded, so roll it forward from nothing.
      return this.beginRecovery(job, `cluster ${cluster} did not start its share: ${'reason' in answer ? answer.reason : answer.kind}`, this.clusters.get(cluster)?.verdict === 'alive' ? null : cluster, out);
    }
    if (job.submit.waiting.size === 0) {
      out.reply.push({ to: 'operator', kind: 'submitted', reqId: job.submit.reqId, ok: true, reason: 'started' });
      job.submit = null;
    }
  }

  private onRestoreAnswer(job: GJob, reqId: number, cluster: string, answer: ClusterAnswer, unreachable: boolean, out: GridStep): void {
    const r = job.recovery;
    if (!r || !r.waiting.delete(reqId)) return;
    if (answer.kind === 'ok') return this.advanceRecovery(job, out);
    if (answer.kind === 'busy') {
      r.retry.set(cluster, this.nowMs + this.config.retryMs);
      return;
    }
    if (answer.kind === 'corrupt' && this.mutant('no-walk-back')) return this.failJob(job, `restore in ${cluster} failed: ${answer.reason}`, out);
    if (answer.kind === 'corrupt') {
      // Walk back (§3.6): no line at or above the damaged epoch can be restored whole; every share rolls back further.
      job.lines = job.lines.filter((l) => l.epoch < answer.epoch);
      return this.beginRecovery(job, `epoch ${answer.epoch} in store ${answer.store} is damaged (${answer.reason}); walking back to line ${job.lines.at(-1)?.epoch ?? 'none'}`, null, out);
    }
    const c = this.clusters.get(cluster);
    const gone = unreachable && (c?.verdict !== 'alive');
    // Not (yet) lost: ask again after a pause rather than spend every attempt at once.
    this.beginRecovery(job, `restore in ${cluster} failed: ${'reason' in answer ? answer.reason : answer.kind}`, gone ? cluster : null, out, this.nowMs + this.config.retryMs);
  }

  // ---- time -------------------------------------------------------------------------

  private onTime(out: GridStep): void {
    for (const c of this.clusters.values()) {
      if (!c.registered && c.verdict !== 'failed' && this.nowMs >= this.startedAtMs + this.config.clusterLeaseMs) {
        c.verdict = 'failed';
        this.clusterLost(c.clusterId, `cluster ${c.clusterId} did not register again after the grid restarted`, out);
      }
    }
    for (const job of this.jobs.values()) {
      const d = job.round.nextDeadlineMs();
      if (d !== null && this.nowMs >= d) this.roundStep(job, { kind: 'tick' }, out);
      if (job.recovery) this.advanceRecovery(job, out);
      if (job.state !== 'running' || job.submit || job.round.status().phase !== 'idle') continue;
      this.checkFinal(job, out);
      if (job.state === 'running' && this.nowMs >= job.nextRoundAtMs) this.startRound(job, out);
    }
  }

  /** Every share completed: the next round is the final one (G4). */
  private checkFinal(job: GJob, out: GridStep): void {
    if (job.final) return;
    const done = this.clustersOf(job).every((c) => this.clusters.get(c)?.reported.get(job.jobId) === 'completed');
    if (!done) return;
    if (this.mutant('complete-without-final-epoch')) {
      job.state = 'completed';
      this.save(out);
      return;
    }
    job.final = { attempts: 0 };
    // At once; after a final round that found a share not done after all, only after a pause.
    job.nextRoundAtMs = job.finalMissed ? Math.min(job.nextRoundAtMs, this.nowMs + this.config.retryMs) : this.nowMs;
    job.finalMissed = false;
  }

  private clustersOf(job: GJob): string[] {
    return [...new Set(job.clusters.values())].sort();
  }

  private unitsIn(job: GJob, cluster: string): string[] {
    return job.units.filter((u) => job.clusters.get(u) === cluster);
  }

  checkInvariants(): void {
    const fail = (m: string): never => { throw new Error(`grid: ${m}`); };
    if (this.jobs.size > this.config.maxJobs) fail('G6: too many jobs');
    for (const j of this.jobs.values()) {
      j.round.checkInvariants();
      if (j.lines.length > KEEP_LINES) fail(`G6: job ${j.jobId} keeps too many lines`);
      for (const l of j.lines) {
        if (l.epoch > j.highestEpoch) fail(`G3: line ${l.epoch} of job ${j.jobId} above the highest epoch ${j.highestEpoch}`);
        for (const c of new Set(Object.values(l.unitClusters))) if (l.clusterEpochs[c] === undefined) fail(`G2: line ${l.epoch} names no epoch for cluster ${c}`);
      }
      const s = j.round.status();
      if (s.epoch !== null && s.epoch > j.highestEpoch) fail(`G3: round epoch ${s.epoch} above the recorded highest`);
      if (j.recovery && s.phase !== 'idle' && j.recovery.phase === 'restoring') fail(`G5: job ${j.jobId} runs a round during a recovery`);
    }
  }
}

export type { GridPersist, GridStep };
