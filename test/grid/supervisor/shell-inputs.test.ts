import { describe, expect, it } from 'vitest';
import { leaseMarginMs } from '../../../src/detector/lease.js';
import type { GridStep } from '../../../src/grid/core/supervisor-types.js';
import { calls, callsOf, CLUSTERS, GRID_CONFIG, GridHarness, JOB, UNITS } from './harness.js';

// What the grid core gained for its real shell (src/grid/shell.ts): a
// checkpoint request answered with its round's outcome, a share its cluster
// failed that moves like a lost cluster's (its lease wait counted from when
// the job stopped being leased to it), events for Watch, metrics and logs,
// recoveries counted, and registration after a restart of the grid (G1, G4).

const LEASE_WAIT_MS = GRID_CONFIG.clusterLeaseMs + GRID_CONFIG.agentLeaseMs + leaseMarginMs(GRID_CONFIG.clusterLeaseMs + GRID_CONFIG.agentLeaseMs);
const checkpointed = (out: GridStep) => out.reply.filter((r) => r.kind === 'checkpointed');

function flying(alive = CLUSTERS): GridHarness {
  const h = new GridHarness();
  h.fly(alive);
  h.step({ kind: 'tick' }, 0);
  h.register(CLUSTERS, 0);
  h.step({ kind: 'submit', reqId: 1, jobId: JOB, units: UNITS }, 10);
  return h;
}

describe('GridSupervisor: checkpoint requests', () => {
  it('runs a round at once and answers with its committed line; an unknown job is not found', () => {
    const h = flying();
    h.advance(20, CLUSTERS);
    expect(checkpointed(h.step({ kind: 'checkpoint', reqId: 9, jobId: 'nope' }, 20))).toEqual([
      { to: 'operator', kind: 'checkpointed', reqId: 9, answer: { kind: 'refused', code: 'not-found', reason: 'unknown job "nope" on grid grid' } },
    ]);
    h.step({ kind: 'checkpoint', reqId: 10, jobId: JOB }, 21);
    const answers = h.log.flatMap((l) => checkpointed(l.out)).filter((r) => r.reqId === 10);
    expect(answers).toHaveLength(1);
    const a = answers[0]!;
    expect(a.kind === 'checkpointed' && a.answer.kind === 'committed' && a.answer.line.epoch).toBe(1n);
    // Before the periodic round was due (checkpointIntervalMs after the submit).
    expect(h.log.find((l) => calls(l.out).some((c) => c.req.kind === 'prepare'))!.t).toBe(21);
  });

  it('a request waiting on a round that a recovery cancels is refused, saying so', () => {
    const h = new GridHarness();
    h.step({ kind: 'tick' }, 0);
    h.register(CLUSTERS, 0);
    const sub = h.step({ kind: 'submit', reqId: 1, jobId: JOB, units: UNITS }, 10);
    h.persistAll(sub);
    for (const c of calls(sub)) h.answer(c, { kind: 'ok' }, 11);
    const started = h.step({ kind: 'checkpoint', reqId: 5, jobId: JOB }, 12);
    expect(calls(started).map((c) => c.req.kind)).toEqual(['prepare', 'prepare', 'prepare']);
    h.persistAll(started);
    h.reports.set('c2', [{ jobId: JOB, state: 'fenced', gen: 0 }]);
    const out = h.heartbeat('c2', {}, 13);
    expect(checkpointed(out)).toEqual([{ to: 'operator', kind: 'checkpointed', reqId: 5, answer: { kind: 'refused', code: 'aborted', reason: expect.stringMatching(/aborted/) } }]);
    expect(h.step({ kind: 'checkpoint', reqId: 6, jobId: JOB }, 14).reply).toEqual([
      { to: 'operator', kind: 'checkpointed', reqId: 6, answer: { kind: 'refused', code: 'failed-precondition', reason: 'job bank is recovering; it is not checkpointed now' } },
    ]);
  });
});

describe('GridSupervisor: a share its cluster failed (G1)', () => {
  it('moves its units to the cluster with the most room once the job\'s lease there has lapsed, and counts the recovery', () => {
    const h = flying();
    h.free.set('c1', 6).set('c2', 0).set('c3', 2);
    h.advance(400, CLUSTERS);
    expect(h.core.jobView(JOB)!.lines.length).toBeGreaterThan(0);
    h.core.drainEvents();
    h.reports.set('c2', [{ jobId: JOB, state: 'failed', gen: 0 }]);
    const failedAt = 410;
    const out = h.heartbeat('c2', {}, failedAt);
    expect(out.persist).toEqual([expect.objectContaining({ jobs: [expect.objectContaining({ state: 'recovering', lost: ['c2'] })] })]);
    // c2 stays a member, but its answers no longer lease the job.
    expect(h.heartbeat('c2', {}, 420).reply).toEqual([{ to: 'c2', kind: 'beat', seq: expect.any(Number), answer: { known: true, leasedJobs: [], leaseMs: 1000, fence: { term: 0n, incarnation: 1n } } }]);
    h.reports.delete('c2');
    const steps = h.advance(10_000, CLUSTERS, (l) => calls(l.out).some((c) => c.req.kind === 'restoreJob'));
    const restores = callsOf(steps).filter((c) => c.req.kind === 'restoreJob');
    // Its last grant was a beat at or before the failure report: the wait counts from there, not from c2's later beats.
    expect(restores[0]!.t).toBeLessThanOrEqual(failedAt + LEASE_WAIT_MS);
    expect(restores[0]!.t).toBeGreaterThanOrEqual(400 + LEASE_WAIT_MS);
    expect(restores.map((c) => c.to).sort()).toEqual(['c1', 'c3']);
    h.advance(restores[0]!.t! + 10, CLUSTERS);
    const v = h.core.jobView(JOB)!;
    expect(v.state).toBe('running');
    expect([...v.clusters.values()]).not.toContain('c2');
    expect(v.recoveries).toBe(1);
    expect(v.lastError).toMatch(/^recovered from the loss of c2: units u1, u4 moved to c1/);
    const kinds = h.core.drainEvents().map((e) => e.kind);
    expect(kinds).toContain('recoveryStarted');
    expect(kinds).toContain('recovered');
  });
});

describe('GridSupervisor: events', () => {
  it('a submit, its rounds and a lost cluster come out as events, in order', () => {
    const h = flying();
    h.advance(300, CLUSTERS);
    const first = h.core.drainEvents();
    expect(first.filter((e) => e.kind === 'clusterRegistered').map((e) => e.kind === 'clusterRegistered' && e.clusterId)).toEqual(CLUSTERS);
    expect(first.find((e) => e.kind === 'jobPlaced')).toEqual({ kind: 'jobPlaced', jobId: JOB, clusters: { u0: 'c1', u1: 'c2', u2: 'c3', u3: 'c1', u4: 'c2', u5: 'c3' } });
    expect(first.find((e) => e.kind === 'jobState')).toEqual({ kind: 'jobState', jobId: JOB, from: null, to: 'running', reason: 'submitted' });
    const rounds = first.filter((e) => e.kind === 'roundStarted' || e.kind === 'roundFinished').map((e) => e.kind);
    expect(rounds.slice(0, 2)).toEqual(['roundStarted', 'roundFinished']);
    h.fly(['c2', 'c3']);
    h.advance(3_000, ['c2', 'c3']);
    const later = h.core.drainEvents();
    const verdict = later.find((e) => e.kind === 'clusterVerdict' && e.change.to === 'failed');
    expect(verdict).toBeDefined();
    const seq = later.filter((e) => e.kind === 'jobState').map((e) => e.kind === 'jobState' && e.to);
    expect(seq).toEqual(['recovering', 'running']);
    expect(h.core.recoveries()).toBe(1);
    expect(h.core.clustersView().map((c) => [c.clusterId, c.verdict])).toEqual([['c1', 'failed'], ['c2', 'alive'], ['c3', 'alive']]);
  });
});

describe('GridSupervisor: a restarted grid', () => {
  it('a cluster registers again; a share its first beat does not name was lost with an incarnation this grid never saw: the job rolls back', () => {
    const h = flying();
    h.advance(400, CLUSTERS);
    const catalog = h.disk;
    const g = new GridHarness({ incarnation: 2n }, catalog, 1_000);
    g.fly(CLUSTERS);
    g.step({ kind: 'tick' }, 1_000);
    // Before it registers again, c1's beat is unknown: it must register (the shell then knows its address).
    expect(g.heartbeat('c1', {}, 1_001).reply[0]).toMatchObject({ kind: 'beat', answer: { known: false } });
    g.registerCluster('c1', 1n, 1_002);
    g.reports.set('c1', []);
    const out = g.heartbeat('c1', {}, 1_003);
    expect(g.core.jobState(JOB)).toBe('recovering');
    expect(out.persist).toEqual([expect.objectContaining({ jobs: [expect.objectContaining({ state: 'recovering', lastError: 'cluster c1 no longer has the job' })] })]);
  });
});

describe('GridSupervisor: a restarted grid\'s lease bound (G1)', () => {
  it('a cluster that never comes back is restored elsewhere only after the old incarnation\'s calls in flight at its death surely lapsed', () => {
    const h = flying();
    h.advance(400, CLUSTERS);
    const g = new GridHarness({ incarnation: 2n }, h.disk, 1_000);
    g.fly(['c1', 'c3']);
    g.free.set('c1', 6).set('c3', 6);
    g.step({ kind: 'tick' }, 1_000);
    g.register(['c1', 'c3'], 1_001);
    // The previous incarnation may have sent a submit or restore just before it died: its deadline bounds that lease.
    expect(firstRestoreAt(g, ['c1', 'c3'], 20_000)).toBeGreaterThanOrEqual(1_000 + GRID_CONFIG.callTimeoutMs + LEASE_WAIT_MS);
  });
});

describe('GridSupervisor: a restarted grid remembers each cluster\'s agent lease (G1)', () => {
  it('a cluster that does not register again is waited out with the agent lease the catalog recorded for it', () => {
    const h = flying();
    h.advance(400, CLUSTERS);
    const agentLeaseMs = 60_000;
    // The shell hands the core the agent leases its catalog recorded at the clusters' registrations.
    const g = new GridHarness({ incarnation: 2n }, h.disk, 1_000, new Map([['c2', agentLeaseMs]]));
    g.fly(['c1', 'c3']);
    g.free.set('c1', 6).set('c3', 6);
    g.step({ kind: 'tick' }, 1_000);
    g.register(['c1', 'c3'], 1_001);
    expect(firstRestoreAt(g, ['c1', 'c3'], 200_000)).toBeGreaterThanOrEqual(1_000 + GRID_CONFIG.callTimeoutMs + GRID_CONFIG.clusterLeaseMs + agentLeaseMs);
  });
});

/** Clusters c1 and c2 registered at 0 with `room` each; only `answering` answer calls. */
function twoClusters(callTimeoutMs: number, answering: string[], room: number): GridHarness {
  const h = new GridHarness({ callTimeoutMs });
  h.fly(answering);
  h.step({ kind: 'tick' }, 0);
  h.free.set('c1', room).set('c2', room);
  h.register(['c1', 'c2'], 0);
  return h;
}

/** When the first restore leaves, the alive clusters beating meanwhile. */
function firstRestoreAt(h: GridHarness, alive: string[], untilMs: number): number {
  const steps = h.advance(untilMs, alive, (l) => calls(l.out).some((c) => c.req.kind === 'restoreJob'));
  return callsOf(steps).find((c) => c.req.kind === 'restoreJob')!.t!;
}

describe('GridSupervisor: a lost cluster\'s lease bound (G1)', () => {
  it('an answered submit bounds the lease by its answer, not by the call timeout: no room fails the job after one lease wait', () => {
    // The real grid's call timeout is minutes (a round's RPC budget); a lease wait of that length would stall every recovery.
    const h = twoClusters(60_000, ['c1', 'c2'], 2);
    h.step({ kind: 'submit', reqId: 1, jobId: JOB, units: ['u0', 'u1', 'u2', 'u3'] }, 10);
    h.free.set('c1', 0).set('c2', 0);
    h.advance(400, ['c1', 'c2']);
    h.fly(['c1']);
    const steps = h.advance(20_000, ['c1'], (l) => h.core.jobView(JOB)?.state === 'failed' && l.t > 0);
    const v = h.core.jobView(JOB)!;
    expect(v.state).toBe('failed');
    expect(v.lastError).toBe('no alive cluster has room for the 2 units of lost cluster c2 (the most room is 0 on c1)');
    expect(steps.at(-1)!.t).toBeLessThanOrEqual(400 + LEASE_WAIT_MS + 1_000);
  });

  it('a submit still unanswered when its cluster is lost bounds the lease by its send plus the call timeout', () => {
    const h = twoClusters(5_000, ['c1'], 4); // c2 never answers the submit
    h.step({ kind: 'submit', reqId: 1, jobId: JOB, units: ['u0', 'u1'] }, 10);
    expect(firstRestoreAt(h, ['c1'], 30_000)).toBeGreaterThanOrEqual(10 + 5_000 + LEASE_WAIT_MS);
  });

  it('a submit whose call came back unreachable keeps its bound (the cluster may still have got it)', () => {
    const h = twoClusters(5_000, ['c1'], 4);
    const submit = h.step({ kind: 'submit', reqId: 1, jobId: JOB, units: ['u0', 'u1'] }, 10);
    const toC2 = calls(submit).find((c) => c.to === 'c2')!;
    h.step({ kind: 'clusterUnreachable', cluster: 'c2', reqId: toC2.reqId, reason: 'DEADLINE_EXCEEDED' }, 20);
    expect(firstRestoreAt(h, ['c1'], 30_000)).toBeGreaterThanOrEqual(10 + 5_000 + LEASE_WAIT_MS);
  });
});

describe('GridSupervisor: one catalog write a step', () => {
  it('a line and another job\'s round start in one step are one write that holds both (a second would replace the first)', () => {
    const h = new GridHarness();
    h.step({ kind: 'tick' }, 0);
    h.register(CLUSTERS, 0);
    for (const [jobId, t] of [['a', 10], ['b', 20]] as const) {
      const out = h.step({ kind: 'submit', reqId: t, jobId, units: ['u0', 'u1', 'u2'] }, t);
      h.persistAll(out);
      for (const c of calls(out)) h.answer(c, { kind: 'ok' }, t + 1);
    }
    const prep = h.step({ kind: 'tick' }, 10 + GRID_CONFIG.checkpointIntervalMs);
    const prepares = calls(prep).filter((c) => c.req.kind === 'prepare');
    expect(prepares.map((c) => c.req.jobId)).toEqual(['a', 'a', 'a']);
    h.persistAll(prep);
    let commit: GridStep | null = null;
    for (const c of prepares) commit = h.answer(c, { kind: 'prepared', pages: 1, bytes: 4096, done: false });
    const commits = calls(commit!);
    const bDue = 20 + GRID_CONFIG.checkpointIntervalMs;
    for (const c of commits.slice(0, -1)) h.answer(c, { kind: 'committed', epoch: 1n }, bDue - 1);
    // The last COMMITTED of a's round arrives when b's first round is due.
    const last = h.answer(commits.at(-1)!, { kind: 'committed', epoch: 1n }, bDue);
    expect(calls(last).filter((c) => c.req.kind === 'prepare').map((c) => c.req.jobId)).toEqual(['b', 'b', 'b']);
    expect(last.persist).toHaveLength(1);
    const rows = new Map(last.persist[0]!.jobs.map((r) => [r.jobId, r]));
    expect(last.persist[0]!.lineOf).toEqual({ jobId: 'a', epoch: 1n });
    expect(rows.get('a')!.lines.map((l) => l.epoch)).toEqual([1n]);
    expect(rows.get('b')!.highestEpoch).toBe('1');
    h.persistAll(last);
    expect(h.disk.find((r) => r.jobId === 'a')!.lines.map((l) => l.epoch)).toEqual([1n]);
    expect(h.core.jobView('a')!.lines.map((l) => l.epoch)).toEqual([1n]);
  });

  it('a step whose write fails still delivers its replies (the calls fail as unsent)', () => {
    const h = new GridHarness();
    h.step({ kind: 'tick' }, 0);
    h.register(CLUSTERS, 0);
    // A registration of a new incarnation of c1, which saves the catalog (its shares are lost): the write fails.
    h.step({ kind: 'submit', reqId: 1, jobId: JOB, units: UNITS }, 10);
    const reg = h.step({ kind: 'clusterRegistered', reqId: 77, clusterId: 'c1', incarnation: 2n, agentLeaseMs: 0 }, 20);
    expect(reg.persist).toHaveLength(1);
    const failed = h.step({ kind: 'persistFailed', what: reg.persist[0]!, reason: 'EIO' }, 21);
    expect(failed.reply).toContainEqual(expect.objectContaining({ kind: 'registered', reqId: 77 }));
  });
});

