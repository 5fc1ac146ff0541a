import { GridError } from '../../common/errors.js';
import { leaseMarginMs } from '../../detector/lease.js';
import type { AgentAnswer, RefusalCode, RestoreSource } from '../../protocol/messages.js';
import { planRestart } from './restart-plan.js';
import { cancelRound, roundStep } from './supervisor-rounds.js';
import type { Asker, ClusterState, Job } from './supervisor-state.js';
import type { ClusterStep } from './supervisor-types.js';

// A job's restart in the cluster supervisor core (supervisor.ts): start,
// recovery from a lost node, rollback for the grid. A restart goes stop →
// lease wait → restore and can go round again: a node that dies during a
// restore is one more lost node (re-plan, never fail while room remains); a
// restore source that fails verification is an epoch to walk back from.
// A restore that moves units off a lost node waits out its lease (C1). The
// first start of a job (a submit, the grid's or a local client's) is a
// restart too, from nothing; any other is a recovery (counted, with events).

/**
 * Starts (or goes round again with) a job's restart. lost: nodes whose units
 * move (C1); ask: a start asked from outside (the grid's submit or restore,
 * a local submit), answered when the restart ends.
 */
export function beginRestart(st: ClusterState, job: Job, reason: string, lost: string | readonly string[] | null, out: ClusterStep, ask?: { epoch: bigint | null; adopt: RestoreSource[]; answer: Asker }): void {
  if (job.state === 'fenced' || job.state === 'completed' || job.state === 'stopped' || job.state === 'failed') {
    if (!ask) return;
  }
  const lostNodes = lost === null ? [] : typeof lost === 'string' ? [lost] : [...lost];
  // A node not registered since this coordinator started may still run the job under a lease of its previous incarnation (C1).
  for (const n of st.nodesOf(job)) if (!st.nodes.has(n) && !lostNodes.includes(n)) lostNodes.push(n);
  for (const n of lostNodes) roundStep(st, job, { kind: 'participantFailed', participant: n, reason }, out);
  cancelRound(st, job, reason, out);
  const prev = job.restart;
  const lostSet = new Set(prev?.lost ?? []);
  const lostAtMs = new Map(prev?.lostAtMs ?? []);
  for (const n of lostNodes) {
    lostSet.add(n);
    if (!lostAtMs.has(n)) lostAtMs.set(n, st.nowMs);
  }
  const epoch = ask ? ask.epoch : prev ? prev.epoch : (job.committed.at(-1) ?? null);
  const fresh = ask?.epoch === null && !prev && job.committed.length === 0 && reason === 'submitted';
  if (!fresh) st.recoveryStarted(job, lostNodes[0] ?? null, reason);
  st.become(job, fresh ? 'starting' : 'recovering', reason);
  job.allDoneAtMs = null;
  job.doneEpoch = null;
  job.final = null;
  job.resume = null;
  job.nextRoundAtMs = null;
  job.restart = {
    reason, attempt: (prev?.attempt ?? 0) + 1, phase: 'stopping', epoch, lost: lostSet, lostAtMs, waiting: new Set(), safeAtMs: 0,
    answer: ask?.answer ?? prev?.answer ?? null, adopt: ask?.adopt ?? prev?.adopt ?? job.adopted, skipped: prev?.skipped ?? [],
  };
  if (job.restart.attempt > st.config.maxRecoveryAttempts) return failJob(st, job, `${reason}: gave up after ${st.config.maxRecoveryAttempts} attempts`, out);
  for (const n of st.nodesOf(job).filter((n) => !lostSet.has(n))) {
    job.restart.waiting.add(st.callAgent(out, n, { kind: 'stopJob', jobId: job.jobId, gen: st.nextGen() }, job.jobId, 'restart', null));
  }
  advanceRestart(st, job, out);
}

export function advanceRestart(st: ClusterState, job: Job, out: ClusterStep): void {
  const r = job.restart;
  if (!r || r.waiting.size > 0) return;
  if (r.phase === 'stopping') {
    r.phase = 'leaseWait';
    const margin = leaseMarginMs(st.config.agentLeaseMs);
    r.safeAtMs = st.mutant('restore-before-lease-lapse') ? st.nowMs
      : Math.max(st.nowMs, ...[...r.lost].map((n) => st.grantOf(n) + st.config.agentLeaseMs + margin));
  }
  if (r.phase === 'leaseWait') {
    if (st.nowMs < r.safeAtMs) return;
    restore(st, job, out);
    return;
  }
  if (r.phase === 'restoring') finishRestart(st, job, out);
}

function restore(st: ClusterState, job: Job, out: ClusterStep): void {
  const r = job.restart!;
  // The starts' gens and placement are in the job's row before the starts leave (C9): not while its write must be retried.
  if (job.rowRetryAtMs !== null) {
    r.safeAtMs = Math.max(st.nowMs + 1, job.rowRetryAtMs);
    return;
  }
  // A suspected node of the job may still run its units under a lease no one waited out: wait for its verdict (C1).
  if (st.nodesOf(job).some((n) => !r.lost.has(n) && st.nodes.get(n)?.verdict === 'suspected')) return;
  // A lost node that registered again since is back: its leases of this job lapsed (the wait is over, and it was
  // granted none since), so its units restart in place.
  for (const n of [...r.lost]) {
    const e = st.nodes.get(n);
    if (e && e.verdict === 'alive' && e.registeredAtMs > (r.lostAtMs.get(n) ?? Infinity)) {
      r.lost.delete(n);
      r.lostAtMs.delete(n);
    }
  }
  let placement: Map<string, string>;
  try {
    placement = planRestart({
      units: job.units, placement: job.placement, lost: r.lost, room: st.capacities(job),
      usable: (n) => st.nodes.get(n)?.verdict === 'alive' && !r.lost.has(n),
    });
  } catch (err) {
    const why = `${r.reason}: ${err instanceof Error ? err.message : String(err)}`;
    const noRoom = err instanceof GridError && err.kind === 'resource-exhausted';
    // A local job has no grid to move it: it waits for room (its nodes coming back), where a grid job's share fails.
    if (noRoom && job.local) {
      job.lastError = `${why}; waiting for room`;
      job.rowDirty = true;
      r.safeAtMs = st.nowMs + st.config.heartbeatIntervalMs;
      return;
    }
    return failJob(st, job, why, out, noRoom ? 'resource-exhausted' : undefined);
  }
  const before = JSON.stringify([...job.placement]);
  job.placement = placement;
  job.rowDirty = true;
  if (JSON.stringify([...placement]) !== before) st.emit({ kind: 'jobPlaced', jobId: job.jobId, placement: Object.fromEntries([...placement].sort()) });
  r.phase = 'restoring';
  for (const node of st.nodesOf(job)) {
    const units = job.units.filter((u) => placement.get(u) === node);
    const sources: RestoreSource[] = [];
    const own = units.filter((u) => !r.adopt.some((a) => a.units.includes(u)));
    if (r.epoch !== null && own.length > 0) sources.push({ store: st.config.clusterId, epoch: r.epoch, units: own });
    for (const a of r.adopt) {
      const mine = a.units.filter((u) => units.includes(u));
      if (mine.length > 0) sources.push({ store: a.store, epoch: a.epoch, units: mine });
    }
    const gen = st.nextGen();
    job.startGens.set(node, gen);
    job.rowDirty = true;
    for (const n of st.nodes.values()) n.reported.delete(job.jobId);
    const reqId = st.callAgent(out, node, { kind: 'startJob', jobId: job.jobId, units, sources, leaseMs: st.config.agentLeaseMs, gen }, job.jobId, 'restart', null);
    r.waiting.add(reqId);
    // Until its answer, the agent may bind the start's lease as late as the call's deadline (C1).
    const bounds = st.nodes.get(node)?.startBounds;
    // (Bounds long past count no more than the grants since: bounded by the calls of one call timeout.)
    for (const [id, at] of bounds ?? []) if (at < st.nowMs) bounds!.delete(id);
    bounds?.set(reqId, st.nowMs + st.config.callTimeoutMs);
  }
}

function finishRestart(st: ClusterState, job: Job, out: ClusterStep): void {
  const r = job.restart!;
  job.restart = null;
  job.needsFull = true;
  job.adopted = r.adopt;
  job.rowDirty = true;
  const fresh = r.reason === 'submitted';
  if (!fresh) {
    // The round the restart cut short stays named (its abort is part of what happened).
    const aborted = /^round \d+ aborted/.test(job.lastError) ? `; ${job.lastError}` : '';
    job.lastError = r.skipped.length === 0 ? `restarted: ${r.reason}${aborted}`
      : `recovered at epoch ${r.epoch ?? 'none (the units started anew)'} after passing over ${r.skipped.map((x) => `epoch ${x.epoch}: ${x.reason}`).join('; ')}`;
  }
  st.become(job, 'running', fresh ? 'started' : `restarted: ${r.reason}`);
  st.recoveryEnded(job, true);
  if (job.local && job.local.intervalMs > 0) job.nextRoundAtMs = st.nowMs + job.local.intervalMs;
  if (r.epoch !== null) job.committed = job.committed.filter((e) => e <= (r.epoch as bigint));
  // A local client learns the epoch its units run from (an operator's restore names it; walked back, the older one).
  if (r.answer?.restore) st.answerLocal(out, r.answer.reqId, { kind: 'ok', epoch: r.epoch, skipped: [...r.skipped] });
  else if (r.answer !== null) st.answer(out, r.answer, { kind: 'ok' });
}

export function onRestartAnswer(st: ClusterState, job: Job, node: string, answer: AgentAnswer, unreachable: boolean, out: ClusterStep): void {
  const r = job.restart!;
  if (r.phase !== 'restoring' || answer.kind === 'ok') return advanceRestart(st, job, out);
  if (answer.kind === 'corrupt') {
    // Walk back: every node of the job restarts from the newest intact epoch below (§3.6).
    job.badEpochs.add(answer.epoch);
    if (!r.skipped.some((x) => x.epoch === answer.epoch)) r.skipped.push({ epoch: answer.epoch, reason: answer.reason });
    const older = job.committed.filter((e) => e < answer.epoch && !job.badEpochs.has(e)).at(-1) ?? null;
    // The grid chose the epoch (a rollback of its line): only the grid may pick another, for every cluster at once.
    const gridChose = r.answer?.to === 'grid';
    if (!gridChose && answer.store === st.config.clusterId && !st.mutant('no-walk-back')) {
      // Past the oldest intact epoch the units start anew: the job runs again from its beginning.
      r.epoch = older;
      return beginRestart(st, job, `epoch ${answer.epoch} is damaged (${answer.reason}); walking back to ${older ?? 'a fresh start'}`, null, out);
    }
    // The grid walks back (its line, for every cluster): it is told, and the share waits stopped for its next restore.
    if (r.answer !== null) {
      st.answer(out, r.answer, { kind: 'corrupt', store: answer.store, epoch: answer.epoch, reason: answer.reason });
      r.answer = null;
    }
    if (gridChose) {
      cancelRound(st, job, 'a restore source is damaged', out);
      job.restart = null;
      job.lastError = `restore from ${answer.store} epoch ${answer.epoch} failed: ${answer.reason}; the grid walks back its line`;
      job.rowDirty = true;
      st.stopEverywhere(job, out);
      return;
    }
    return failJob(st, job, `restore from ${answer.store} epoch ${answer.epoch} failed: ${answer.reason}`, out);
  }
  // The agent refused the job itself (a bad spec: a command that does not exist there, an env it cannot pass):
  // every node would refuse it again, so going round again only delays the answer. The job fails at once, its
  // asker hears why with the agent's code, and a corrected submit may follow (a failed job is no live one).
  if (answer.kind === 'refused' && answer.code === 'invalid-argument') {
    return failJob(st, job, `the start on ${node} was refused: ${answer.reason}`, out, 'invalid-argument');
  }
  // The target died or refused: one more lost node, and go round again (never fail while room remains).
  const entry = st.nodes.get(node);
  const dead = unreachable || entry?.verdict !== 'alive';
  const lost = dead && !st.mutant('restore-onto-dead-node') ? node : null;
  if (!lost && st.mutant('restore-onto-dead-node')) return failJob(st, job, `restore on ${node} failed: ${'reason' in answer ? answer.reason : answer.kind}`, out);
  beginRestart(st, job, `restore on ${node} failed: ${'reason' in answer ? answer.reason : answer.kind}`, lost, out);
}

export function failJob(st: ClusterState, job: Job, reason: string, out: ClusterStep, code?: RefusalCode): void {
  cancelRound(st, job, reason, out);
  const who = job.restart?.answer ?? null;
  if (who?.to === 'local' && code) st.answerLocal(out, who.reqId, { kind: 'refused', reason, code });
  else if (who) st.answer(out, who, { kind: 'refused', reason });
  job.restart = null;
  job.lastError = reason;
  job.rowDirty = true;
  st.become(job, 'failed', reason);
  st.recoveryEnded(job, false);
  st.stopEverywhere(job, out);
}
