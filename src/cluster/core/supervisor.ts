import type { Verdict } from '../../detector/monitor.js';
import type { GridFence } from '../../protocol/grid-fence.js';
import type { AgentAnswer } from '../../protocol/messages.js';
import { checkClusterInvariants } from './supervisor-checks.js';
import { onStopAnswer } from './supervisor-control.js';
import { beatGrid, fence, onGridBeatAnswer, onGridCall, showShares } from './supervisor-grid.js';
import { localDeadline, localTime, onLocalCall } from './supervisor-local.js';
import { onAgentBeat, onAgentReports, onNodeRegistered, verdicts } from './supervisor-nodes.js';
import { advanceRestart, onRestartAnswer } from './supervisor-restart.js';
import { resumeDeadline, resumeStarted, resumeTime, rowFailed, saveRows, takeBack } from './supervisor-resume.js';
import { preparedInput, roundStep } from './supervisor-rounds.js';
import { ClusterState, isLive } from './supervisor-state.js';
import type { ClusterEvent, ClusterInput, ClusterJobState, ClusterPersist, ClusterReply, ClusterStep, ClusterSupervisorConfig, JobRow } from './supervisor-types.js';

// The cluster coordinator's job supervisor as a pure core (ARCHITECTURE §8):
// node membership (registration, heartbeats) through the detector core,
// rounds through the round core — the grid's two-level rounds, and the
// periodic rounds of the jobs the cluster runs on its own (local jobs) —
// and each job's lifecycle — start, recovery from a lost node, rollback for
// the grid, leases and fencing, the final round, completion, resume after a
// restart of this coordinator — as a state machine whose waits are
// deadlines and whose calls are sends. What happened comes out as events
// (drainEvents), for Watch streams, logs and metrics.
//
// Intuition: a job is either running, or being (re)started by a "restart"
// that goes stop → lease wait → restore and can go round again: a node that
// dies during a restore is one more lost node (re-plan, never fail while
// room remains); a restore source that fails verification is an epoch to
// walk back from (every node of the job on the same older epoch). The
// grid's lease bounds every grid-managed job: when it lapses, the job is
// fenced here before the grid may run it elsewhere. The job table (one row
// per job, saved before the sends that depend on it) lets a restarted
// coordinator take its local jobs back without stopping them.
//
// Invariants (tests cite them as C1..C10; checkInvariants checks those that
// are about the state, C1..C8, and C9's part that is: a row not flagged dirty
// is the one last saved; C9 and C10 are about steps, which the tests check):
//  C1. A node's units run elsewhere only after its lease has surely lapsed:
//      a restore that moves units off a lost node is sent no earlier than
//      the node's last grant + agentLeaseMs + margin (for a node not
//      registered since this coordinator started, the previous
//      incarnation's last possible grant: the first step + callTimeoutMs).
//  C2. A live job's placement uses only registered nodes — save nodes a resumed
//      job still waits for, and lost nodes whose units a restart moves (to
//      a restart, a node not registered since this coordinator started is
//      lost: it may run the job under the previous incarnation's lease).
//  C3. Epochs only grow: every PREPARE of a job names an epoch above every
//      earlier one this incarnation saw (the round core's invariant 1), and
//      a local job's epoch is also above every epoch committed.
//  C4. A job with a restart in progress (or a resume) has no round running.
//  C5. A job is `completed` only if an epoch committed after all of its
//      units reported completion; for a local job, one in which every node
//      said done at the cut (its final round).
//  C6. A grid-managed job whose grid lease lapsed is fenced, not running.
//      A local job has no grid lease.
//  C7. Bounded: jobs ≤ maxJobs, committed epochs ≤ keepEpochs per job,
//      events ≤ MAX_EVENTS between drains, persists remembered ≤ 64 steps.
//  C8. Start and stop gens are incarnation × 2^32 + a count: a restarted
//      coordinator's are above every earlier one's, and a gen read back
//      from the job table still names the start a node reports on.
//  C9. A job's row is handed to the driver (persisted before the step's
//      sends) in every step that changed it, at most once per step. Only
//      rows flagged dirty are built at the end of a step (saveRows).
//  C10. A resumed job runs again without a restart only if every node of
//      its row registered and reported the row's start running (or done).
//
// The parts: the state and its shared primitives (supervisor-state.ts),
// membership (supervisor-nodes.ts), the grid's calls and heartbeat
// (supervisor-grid.ts), local jobs (supervisor-local.ts), the restart
// machine (supervisor-restart.ts), a job's rounds (supervisor-rounds.ts),
// the job table and resume (supervisor-resume.ts) and the invariant checks
// (supervisor-checks.ts); here the steps, a failed persist, agents'
// answers, time and the views.

/** Steps whose persists may still be reported failed (C7). */
const KEEP_STEPS = 64;

export interface ClusterResume {
  rows: JobRow[];
  /** Per job, the epochs committed in the store (read by the shell at start): the manifests are the decision. */
  committed: Map<string, bigint[]>;
  /** Deleted jobs' highest epochs, from the job table (C3). */
  forgotten?: Map<string, bigint>;
}

export class ClusterSupervisor {
  private readonly st: ClusterState;
  /** A step's calls and answers, by the persists it handed the driver: a failed persist means none of them left. */
  private readonly stepOf = new Map<ClusterPersist, { calls: number[]; replies: ClusterReply[] }>();

  constructor(private readonly config: ClusterSupervisorConfig, resume?: ClusterResume) {
    this.st = new ClusterState(config);
    for (const [jobId, e] of resume?.forgotten ?? []) this.st.rememberEpochs(jobId, e);
    if (resume) takeBack(this.st, resume.rows, resume.committed);
  }

  get failuresDetected(): number {
    return this.st.failuresDetected;
  }

  step(input: ClusterInput, nowMs: number): ClusterStep {
    const st = this.st;
    if (nowMs < st.nowMs) throw new Error(`cluster time went back: ${nowMs} < ${st.nowMs}`);
    st.nowMs = nowMs;
    if (st.startedAtMs === null) {
      st.startedAtMs = nowMs;
      resumeStarted(st);
    }
    st.issued = [];
    const out: ClusterStep = { persist: [], send: [], reply: [] };
    verdicts(st, st.monitor.step({ kind: 'tick' }, nowMs).changes, out);
    switch (input.kind) {
      case 'nodeRegistered': onNodeRegistered(st, input, out); break;
      case 'agentHeartbeat': onAgentBeat(st, input.hb, out); break;
      case 'agentReports': onAgentReports(st, input.member, input.incarnation, input.jobs, out); break;
      case 'agentAnswer': this.onAgentAnswer(input.reqId, input.answer, out); break;
      case 'agentUnreachable': this.onAgentAnswer(input.reqId, { kind: 'refused', reason: `unreachable: ${input.reason}` }, out, true); break;
      case 'gridCall': onGridCall(st, input.call, out); break;
      case 'gridHeartbeatAnswer': onGridBeatAnswer(st, input.sentAtMs, input.answer); break;
      case 'localCall': onLocalCall(st, input.reqId, input.req, out); break;
      case 'persisted': this.onPersisted(input.what, null, out); break;
      case 'persistFailed': this.onPersisted(input.what, input.reason, out); break;
      case 'epochRetired': this.onEpochRetired(input.jobId, input.epoch); break;
      case 'tick': break;
    }
    this.onTime(out);
    saveRows(st, out);
    showShares(st);
    if (out.persist.length > 0) {
      const record = { calls: st.issued, replies: out.reply.filter((r) => r.kind !== 'beat') };
      for (const p of out.persist) this.stepOf.set(p, record);
      for (const k of [...this.stepOf.keys()].slice(0, -KEEP_STEPS * 4)) this.stepOf.delete(k);
    }
    return out;
  }

  nextDeadline(): number | null {
    const st = this.st;
    let at = st.grid.nextBeatMs;
    const min = (x: number | null): void => { if (x !== null) at = Math.min(at, x); };
    // nextStepMs: the detector also asks to be stepped every tick, to tell its own pauses from its peers' silence.
    min(st.monitor.nextStepMs());
    for (const j of st.jobs.values()) {
      min(j.round.nextDeadlineMs());
      // Past its lease wait, a restart waits for a verdict (a heartbeat or a detector deadline), not a time.
      if (j.restart?.phase === 'leaseWait' && j.restart.safeAtMs > st.nowMs) min(j.restart.safeAtMs);
      if (!j.local && (j.state === 'running' || j.state === 'recovering')) min(j.gridLeaseUntilMs);
      min(localDeadline(j));
      min(resumeDeadline(st, j));
      min(j.rowRetryAtMs);
    }
    return at;
  }

  /** Events dropped because nobody drained them in time (C7: the oldest half goes when MAX_EVENTS are kept). */
  get eventsDropped(): number {
    return this.st.eventsDropped;
  }

  /** Returns and clears what happened since the last call (bounded: C7). */
  drainEvents(): ClusterEvent[] {
    const e = this.st.events;
    this.st.events = [];
    return e;
  }

  jobState(jobId: string): ClusterJobState | null {
    return this.st.jobs.get(jobId)?.state ?? null;
  }

  jobIds(): string[] {
    return [...this.st.jobs.keys()].sort();
  }

  jobView(jobId: string) {
    const j = this.st.jobs.get(jobId);
    if (!j) return null;
    const r = j.round.status();
    return {
      state: j.state, units: [...j.units], placement: new Map(j.placement), committed: [...j.committed], lastEpoch: j.committed.at(-1) ?? null,
      lastError: j.lastError, recoveries: j.recoveries, roundsCommitted: r.roundsCommitted, roundsAborted: r.roundsAborted, roundPhase: r.phase,
      local: j.local ? { ...j.local } : null, gridManaged: j.local === null, startGens: new Map(j.startGens),
      /** Every unit reported completed since the job's last start (a grid job's share is then complete). */
      allDone: j.allDoneAtMs !== null,
      /** What status and Watch show: the state, or completed for a grid share shown so (showShares). */
      shownState: j.shareShownCompleted ? 'completed' : j.state,
    };
  }

  /** The newest grid fence this cluster has seen (F1, protocol/grid-fence.ts), and how many calls it refused as older. */
  gridFence(): GridFence {
    return this.st.grid.fence;
  }

  get staleGridCalls(): number {
    return this.st.grid.staleCalls;
  }

  /** The incarnation the node is registered with (null: not registered). */
  nodeIncarnation(nodeId: string): bigint | null {
    return this.st.nodes.get(nodeId)?.incarnation ?? null;
  }

  knowsNode(nodeId: string, incarnation: bigint): boolean {
    const n = this.st.nodes.get(nodeId);
    return n !== undefined && n.incarnation === incarnation && n.verdict !== 'failed';
  }

  nodesView(): Array<{ nodeId: string; incarnation: bigint; capacityUnits: number; placedUnits: number; verdict: Verdict; phi: number; silenceMs: number }> {
    const status = new Map(this.st.monitor.status(this.st.nowMs).map((s) => [s.peer, s]));
    return this.st.capacities(null).map((c) => {
      const n = this.st.nodes.get(c.nodeId)!;
      const s = status.get(c.nodeId);
      return { nodeId: c.nodeId, incarnation: n.incarnation, capacityUnits: c.capacityUnits, placedUnits: c.placedUnits, verdict: n.verdict, phi: s?.phi ?? 0, silenceMs: s?.lastHeartbeatAgeMs ?? 0 };
    }).sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  checkInvariants(): void {
    checkClusterInvariants(this.st);
  }

  // ---- persists ----------------------------------------------------------------

  /**
   * A manifest's report goes to its round. A failed persist also means the
   * driver sent none of that step's calls and replies: each call fails as
   * not sent (a refusal, not a lost node), and the answers go out again.
   */
  private onPersisted(what: ClusterPersist, error: string | null, out: ClusterStep): void {
    if (error !== null) {
      const record = this.stepOf.get(what);
      for (const [p, r] of this.stepOf) if (r === record) this.stepOf.delete(p);
      if (record) {
        const kind = what.kind === 'manifest' ? 'manifest' : 'job table';
        for (const reqId of record.calls) this.onAgentAnswer(reqId, { kind: 'refused', reason: `not sent: the ${kind} write failed: ${error}` }, out);
        out.reply.push(...record.replies);
      }
      if (what.kind === 'jobRow') return rowFailed(this.st, what.row);
    }
    // A forgotten job's row that stays after a failed write: a restarted coordinator takes back a stopped job, deleted again by the next delete.
    if (what.kind !== 'manifest') return;
    const job = this.st.jobs.get(what.jobId);
    if (!job) return;
    roundStep(this.st, job, error === null ? { kind: 'manifestWritten', epoch: what.epoch } : { kind: 'manifestFailed', epoch: what.epoch, reason: error }, out);
  }

  /** A retired epoch is no restore point any more (garbage collection never retires the newest: R1). */
  private onEpochRetired(jobId: string, epoch: bigint): void {
    const job = this.st.jobs.get(jobId);
    if (job) job.committed = job.committed.filter((e) => e !== epoch);
  }

  // ---- agents' answers -----------------------------------------------------------

  private onAgentAnswer(reqId: number, answer: AgentAnswer, out: ClusterStep, unreachable = false): void {
    const st = this.st;
    const p = st.pending.get(reqId);
    if (!p) return;
    st.pending.delete(reqId);
    // An answered start bound its lease by now: its bound becomes a grant. Unanswered, it may still arrive (C1).
    const entry = st.nodes.get(p.node);
    if (entry?.startBounds.has(reqId) && !unreachable) {
      entry.startBounds.delete(reqId);
      entry.lastGrantMs = Math.max(entry.lastGrantMs, st.nowMs);
    }
    const job = st.jobs.get(p.jobId);
    if (!job) return;
    if (p.what === 'stop') return onStopAnswer(st, job, reqId, !unreachable && answer.kind === 'ok', out);
    if (p.what === 'restart') {
      if (!job.restart?.waiting.delete(reqId)) return;
      return onRestartAnswer(st, job, p.node, answer, unreachable, out);
    }
    if (p.what !== 'round' || p.epoch === null) return;
    const epoch = p.epoch;
    const participant = p.node;
    // Only the running round's cut counts: a late PREPARED(done) of an aborted round says nothing of this one (C5).
    if (answer.kind === 'prepared' && answer.done && job.round.status().epoch === epoch) job.doneAtCut.add(participant);
    if (answer.kind === 'prepared') return roundStep(st, job, preparedInput(st, participant, epoch, answer), out);
    if (answer.kind === 'durable') return roundStep(st, job, { kind: 'durable', participant, epoch, part: answer.part, digest: answer.digest ?? '' }, out);
    const reason = 'reason' in answer ? answer.reason : answer.kind;
    if (p.kind === 'prepare') roundStep(st, job, { kind: 'prepareFailed', participant, epoch, reason }, out);
    else if (p.kind === 'commit') roundStep(st, job, { kind: 'durableFailed', participant, epoch, reason }, out);
  }

  // ---- time ----------------------------------------------------------------------

  private onTime(out: ClusterStep): void {
    const st = this.st;
    for (const job of [...st.jobs.values()]) {
      // The grid's lease first: a cluster that wakes from a pause past it must not start anything more (C6).
      if (!job.local && isLive(job) && st.nowMs >= job.gridLeaseUntilMs) {
        fence(st, job, out);
        continue;
      }
      const d = job.round.nextDeadlineMs();
      if (d !== null && st.nowMs >= d) roundStep(st, job, { kind: 'tick' }, out);
      if (job.restart?.phase === 'leaseWait') advanceRestart(st, job, out);
      if (job.resume) resumeTime(st, job, out);
      localTime(st, job, out);
    }
    if (st.nowMs >= st.grid.nextBeatMs) beatGrid(st, out);
  }
}
