import { describe, expect, it } from 'vitest';
import { leaseMarginMs } from '../../../src/detector/lease.js';
import type { GridStep } from '../../../src/grid/core/supervisor-types.js';
import { beatAnswer, calls, callsOf, CLUSTERS, commitRound, GRID_CONFIG, GridHarness, gridCall, JOB, nextRound, SHARES, submitted, UNITS, type Logged } from './harness.js';

// Exact-output tests of the grid supervisor core (src/grid/core/supervisor.ts),
// driven by feeding inputs and comparing the exact sends, catalog writes and
// replies; invariants G1..G6 are those of its header, and checkInvariants()
// runs after every step (harness.ts). Config values are the simulator's.

const ALL_C1: Record<string, string> = { u0: 'c1', u1: 'c2', u2: 'c3', u3: 'c1', u4: 'c2', u5: 'c3' };
/** G1's wait: clusterLeaseMs + agentLeaseMs + margin(the two) = 1000 + 500 + 300. */
const LEASE_WAIT_MS = GRID_CONFIG.clusterLeaseMs + GRID_CONFIG.agentLeaseMs + leaseMarginMs(GRID_CONFIG.clusterLeaseMs + GRID_CONFIG.agentLeaseMs);

const ofKind = (steps: Logged[], kind: string) => callsOf(steps).filter((c) => c.req.kind === kind);
const operator = (out: GridStep) => out.reply.filter((r) => r.to === 'operator');

describe('GridSupervisor: membership and submit', () => {
  it('a beat counts once its cluster registered (RegisterCluster); an unregistered cluster or another incarnation is unknown; an older registration is refused', () => {
    const h = new GridHarness();
    const unknown = { known: false, leasedJobs: [], leaseMs: 1000, fence: { term: 0n, incarnation: 1n } };
    expect(h.heartbeat('c1', {}, 0).reply).toEqual([{ to: 'c1', kind: 'beat', seq: 1, answer: unknown }]);
    expect(h.registerCluster('c1', 1n, 0).reply).toEqual([{ to: 'c1', kind: 'registered', reqId: expect.any(Number), ok: true, reason: 'registered' }]);
    expect(h.heartbeat('c1', {}, 0)).toEqual({ persist: [], send: [], reply: [{ to: 'c1', kind: 'beat', seq: 2, answer: { known: true, leasedJobs: [], leaseMs: 1000, fence: { term: 0n, incarnation: 1n } } }] });
    h.registerCluster('c2', 3n, 1);
    expect(h.heartbeat('c2', { incarnation: 2n }, 2).reply).toEqual([{ to: 'c2', kind: 'beat', seq: 1, answer: unknown }]);
    expect(h.registerCluster('c2', 2n, 3).reply).toEqual([{ to: 'c2', kind: 'registered', reqId: expect.any(Number), ok: false, reason: 'fenced: cluster c2 incarnation 2 is older than 3' }]);
  });

  it('refuses a submit while no cluster is registered', () => {
    const h = new GridHarness();
    expect(h.step({ kind: 'submit', reqId: 7, jobId: JOB, units: UNITS }, 0)).toEqual({
      persist: [], send: [], reply: [{ to: 'operator', kind: 'submitted', reqId: 7, ok: false, reason: 'no alive cluster is registered', code: 'unavailable' }],
    });
  });

  it('writes the catalog in the step that sends the submits (the driver sends them once it is durable), and answers started once all are ok', () => {
    const h = new GridHarness();
    h.step({ kind: 'tick' }, 0);
    h.register(CLUSTERS, 0);
    const out = h.step({ kind: 'submit', reqId: 1, jobId: JOB, units: ['u5', 'u4', 'u3', 'u2', 'u1', 'u0'] }, 10);
    expect(out).toEqual({
      persist: [{
        kind: 'catalog', reason: 'state', step: expect.any(Number),
        jobs: [{ jobId: JOB, units: UNITS, state: 'running', clusters: ALL_C1, highestEpoch: '0', lines: [], lost: [], lastError: '', recoveries: 0 }],
      }],
      send: CLUSTERS.map((c, i) => ({ to: c, call: gridCall(i + 1, { kind: 'submitJob', jobId: JOB, units: SHARES[c]!, gen: 0, leaseMs: GRID_CONFIG.clusterLeaseMs }) })),
      reply: [],
    });
    const [a, b, c] = calls(out);
    expect(h.answer(a!, { kind: 'ok' }, 20)).toEqual({ persist: [], send: [], reply: [] });
    expect(h.answer(c!, { kind: 'ok' }, 21)).toEqual({ persist: [], send: [], reply: [] });
    expect(h.answer(b!, { kind: 'ok' }, 22)).toEqual({ persist: [], send: [], reply: [{ to: 'operator', kind: 'submitted', reqId: 1, ok: true, reason: 'started' }] });
    // Every cluster holding units is leased the job on its heartbeat answers.
    for (const cl of CLUSTERS) expect(beatAnswer(h.heartbeat(cl, {}, 30)).leasedJobs).toEqual([JOB]);
  });

  it('a second submit of a running job is refused', () => {
    const h = new GridHarness();
    submitted(h);
    expect(operator(h.step({ kind: 'submit', reqId: 2, jobId: JOB, units: UNITS }, 30))).toEqual([
      { to: 'operator', kind: 'submitted', reqId: 2, ok: false, reason: 'job bank is already running', code: 'already-exists' },
    ]);
  });
});

describe('GridSupervisor: rounds', () => {
  it('G3: the round\'s epoch is in the catalog written by the step that sends its PREPARE, checkpointIntervalMs after the submit', () => {
    const h = new GridHarness();
    submitted(h);
    const round = nextRound(h);
    expect(round.t).toBe(10 + GRID_CONFIG.checkpointIntervalMs);
    expect(round.out.persist).toEqual([{
      kind: 'catalog', reason: 'state', step: expect.any(Number),
      jobs: [{ jobId: JOB, units: UNITS, state: 'running', clusters: ALL_C1, highestEpoch: '1', lines: [], lost: [], lastError: '', recoveries: 0 }],
    }]);
    expect(round.out.send.map((s) => [s.to, s.call.req])).toEqual(CLUSTERS.map((c) => [c, { kind: 'prepare', jobId: JOB, epoch: 1n, parentEpoch: null }]));
  });

  it('PREPARED from all → COMMIT to all → committed from all → the line is written before it counts → the next round names it', () => {
    const h = new GridHarness();
    submitted(h);
    const round = nextRound(h);
    h.persistAll(round.out);
    const [p1, p2, p3] = calls(round.out);
    expect(h.answer(p1!, { kind: 'prepared', pages: 2, bytes: 1, done: false })).toEqual({ persist: [], send: [], reply: [] });
    expect(h.answer(p3!, { kind: 'prepared', pages: 2, bytes: 1, done: false })).toEqual({ persist: [], send: [], reply: [] });
    const commit = h.answer(p2!, { kind: 'prepared', pages: 2, bytes: 1, done: false });
    expect(commit.send.map((s) => [s.to, s.call.req])).toEqual(CLUSTERS.map((c) => [c, { kind: 'commit', jobId: JOB, epoch: 1n }]));
    const [c1, c2, c3] = calls(commit);
    h.answer(c1!, { kind: 'committed', epoch: 1n });
    h.answer(c2!, { kind: 'committed', epoch: 1n });
    const lineStep = h.answer(c3!, { kind: 'committed', epoch: 1n });
    const line = { epoch: 1n, clusterEpochs: { c1: '1', c2: '1', c3: '1' }, unitClusters: ALL_C1 };
    expect(lineStep).toEqual({
      send: [], reply: [],
      persist: [{
        kind: 'catalog', reason: 'line', step: expect.any(Number), lineOf: { jobId: JOB, epoch: 1n },
        jobs: [{ jobId: JOB, units: UNITS, state: 'running', clusters: ALL_C1, highestEpoch: '1', lines: [line], lost: [], lastError: '', recoveries: 0 }],
      }],
    });
    expect(h.core.jobView(JOB)!.lines).toEqual([]); // not before the write
    h.persistAll(lineStep);
    expect(h.core.jobView(JOB)!.lines).toEqual([line]);
    const next = nextRound(h);
    expect(next.t).toBe(h.log.find((l) => l.input.kind === 'persisted')!.t + GRID_CONFIG.checkpointIntervalMs);
    expect(next.out.send.map((s) => s.call.req)).toEqual(CLUSTERS.map(() => ({ kind: 'prepare', jobId: JOB, epoch: 2n, parentEpoch: 1n })));
  });

  it('a line whose write fails aborts the round: ABORT to every cluster, no line', () => {
    const h = new GridHarness();
    submitted(h);
    const round = nextRound(h);
    h.persistAll(round.out);
    let last: GridStep | null = null;
    for (const c of calls(round.out)) last = h.answer(c, { kind: 'prepared', pages: 1, bytes: 1, done: false });
    for (const c of calls(last!)) last = h.answer(c, { kind: 'committed', epoch: 1n });
    const out = h.step({ kind: 'persistFailed', what: last!.persist[0]!, reason: 'EIO' });
    expect(out.send.map((s) => [s.to, s.call.req])).toEqual(CLUSTERS.map((c) => [c, { kind: 'abort', jobId: JOB, epoch: 1n }]));
    expect(h.core.jobView(JOB)!.lines).toEqual([]);
    expect(h.core.jobView(JOB)!.lastError).toMatch(/^grid round 1 aborted in writingManifest: .*EIO/);
  });

  it('a catalog write that fails means the step\'s PREPAREs were never sent: the round aborts at once', () => {
    const h = new GridHarness();
    submitted(h);
    const round = nextRound(h);
    const out = h.step({ kind: 'persistFailed', what: round.out.persist[0]!, reason: 'ENOSPC' });
    expect(out.send.map((s) => [s.to, s.call.req])).toEqual(CLUSTERS.map((c) => [c, { kind: 'abort', jobId: JOB, epoch: 1n }]));
    expect(h.core.jobView(JOB)!.lastError).toMatch(/^grid round 1 aborted in preparing: .*not sent: the catalog write failed: ENOSPC/);
    // A late answer to a PREPARE that never left changes nothing.
    expect(h.answer(calls(round.out)[0]!, { kind: 'prepared', pages: 1, bytes: 1, done: false })).toEqual({ persist: [], send: [], reply: [] });
  });
});

describe('GridSupervisor: the final round (G4)', () => {
  function allCompleted(h: GridHarness): void {
    for (const c of CLUSTERS) h.reports.set(c, [{ jobId: JOB, state: 'completed', gen: 0 }]);
  }

  it('once every share reported completion, the next round starts at once and its line completes the job', () => {
    const h = new GridHarness();
    submitted(h);
    const first = nextRound(h);
    commitRound(h, first.out);
    allCompleted(h);
    // The first heartbeat after which every share is completed starts the final round in its own step.
    const final = nextRound(h);
    expect(final.input.kind).toBe('clusterHeartbeat');
    expect(final.input.kind === 'clusterHeartbeat' && final.input.hb.member).toBe('c3');
    expect(final.out.send.map((s) => s.call.req)).toEqual(CLUSTERS.map(() => ({ kind: 'prepare', jobId: JOB, epoch: 2n, parentEpoch: 1n })));
    const written = commitRound(h, final.out, { c1: true, c2: true, c3: true });
    expect(h.core.jobState(JOB)).toBe('completed');
    expect(written.send.map((s) => [s.to, s.call.req])).toEqual(CLUSTERS.map((c) => [c, { kind: 'stopJob', jobId: JOB }]));
    expect(written.persist).toEqual([expect.objectContaining({ kind: 'catalog', reason: 'state', jobs: [expect.objectContaining({ state: 'completed', lastError: 'completed; its end state is line 2' })] })]);
    expect(h.core.jobView(JOB)!.lines.at(-1)!.epoch).toBe(2n);
  });

  it('a second submit of a completed job is refused and changes nothing (issue 8: it made the job "running" with no units)', () => {
    const h = new GridHarness();
    submitted(h);
    commitRound(h, nextRound(h).out);
    allCompleted(h);
    commitRound(h, nextRound(h).out, { c1: true, c2: true, c3: true });
    expect(h.core.jobState(JOB)).toBe('completed');
    const before = h.core.jobView(JOB);
    const out = h.step({ kind: 'submit', reqId: 9, jobId: JOB, units: UNITS }, h.nowMs + 1);
    expect(out).toEqual({
      persist: [], send: [],
      reply: [{ to: 'operator', kind: 'submitted', reqId: 9, ok: false, reason: 'job bank already exists (completed); delete it first to reuse its id', code: 'already-exists' }],
    });
    expect(h.core.jobView(JOB)).toEqual(before);
    // And a checkpoint request on it is answered about that job (it was "unknown job" once replaced).
    expect(operator(h.step({ kind: 'checkpoint', reqId: 10, jobId: JOB }, h.nowMs + 1))).toEqual([
      { to: 'operator', kind: 'checkpointed', reqId: 10, answer: { kind: 'refused', code: 'failed-precondition', reason: 'job bank is completed; it is not checkpointed now' } },
    ]);
  });

  it('a final round that commits while a cluster was not done at its cut does not complete the job', () => {
    const h = new GridHarness();
    submitted(h);
    commitRound(h, nextRound(h).out);
    allCompleted(h);
    const final = nextRound(h);
    const written = commitRound(h, final.out, { c1: true, c2: false, c3: true });
    expect(h.core.jobState(JOB)).toBe('running');
    expect(h.core.jobView(JOB)!.lines.map((l) => l.epoch)).toEqual([1n, 2n]);
    // Still every share says completed: another final round follows, after a pause (retryMs), not in the
    // same step (no stop was sent), and it completes the job once every cluster was done at its cut.
    expect(written.send).toEqual([]);
    const writtenAtMs = h.nowMs;
    const again = nextRound(h);
    expect(again.t).toBeGreaterThan(writtenAtMs);
    expect(again.t).toBeLessThanOrEqual(writtenAtMs + GRID_CONFIG.retryMs + 50);
    expect(again.out.send.map((s) => [s.to, s.call.req])).toEqual(CLUSTERS.map((c) => [c, { kind: 'prepare', jobId: JOB, epoch: 3n, parentEpoch: 2n }]));
    commitRound(h, again.out, { c1: true, c2: true, c3: true });
    expect(h.core.jobState(JOB)).toBe('completed');
  });

  it('a final round that never commits fails the job, names every attempt, and stops every share', () => {
    const h = new GridHarness();
    submitted(h);
    commitRound(h, nextRound(h).out);
    allCompleted(h);
    const answered: GridStep[] = [];
    for (let i = 0; i < GRID_CONFIG.maxFinalAttempts; i++) {
      const final = nextRound(h);
      h.persistAll(final.out);
      for (const c of calls(final.out)) answered.push(h.answer(c, { kind: 'refused', reason: 'ENOSPC' }));
    }
    expect(h.core.jobState(JOB)).toBe('failed');
    expect(h.core.jobView(JOB)!.lastError).toMatch(/^its units finished but the final round did not commit, so its final state is in no epoch \(attempt 1: grid round 2 aborted in preparing: .*ENOSPC/);
    expect(answered.flatMap(calls).filter((c) => c.req.kind === 'stopJob').map((c) => c.to)).toEqual(CLUSTERS);
  });

  it('a late PREPARED(done) of an aborted final round does not count for the next one (G4)', () => {
    const h = new GridHarness();
    submitted(h);
    commitRound(h, nextRound(h).out);
    allCompleted(h);
    const final = nextRound(h);
    h.persistAll(final.out);
    const [c1, c2, c3] = calls(final.out);
    h.answer(c1!, { kind: 'prepared', pages: 1, bytes: 4096, done: true });
    h.answer(c3!, { kind: 'prepared', pages: 1, bytes: 4096, done: true });
    // c2 does not answer in time: the round aborts, and the next final round starts.
    const again = nextRound(h);
    expect(again.out.send.map((s) => s.call.req)).toEqual(CLUSTERS.map(() => ({ kind: 'prepare', jobId: JOB, epoch: 3n, parentEpoch: 1n })));
    // Its late answer to the aborted round says done; at the new cut it is not.
    h.answer(c2!, { kind: 'prepared', pages: 1, bytes: 4096, done: true });
    commitRound(h, again.out, { c1: true, c2: false, c3: true });
    expect(h.core.jobState(JOB)).toBe('running');
  });

  it('a report of completion from before the current gen does not count', () => {
    const h = new GridHarness();
    submitted(h);
    commitRound(h, nextRound(h).out);
    for (const c of CLUSTERS) h.reports.set(c, [{ jobId: JOB, state: 'completed', gen: 7 }]);
    const round = nextRound(h);
    // A periodic round, checkpointIntervalMs after the last, not a final one.
    expect(round.input.kind).toBe('tick');
    commitRound(h, round.out, { c1: true, c2: true, c3: true });
    expect(h.core.jobState(JOB)).toBe('running');
  });
});

describe('GridSupervisor: a lost cluster (G1)', () => {
  it('records the recovery at once, restores only after the cluster and agent leases surely lapsed, on the cluster with the most room', () => {
    const h = new GridHarness();
    h.free.set('c2', 6).set('c3', 4);
    h.fly(CLUSTERS);
    h.step({ kind: 'tick' }, 0);
    h.register(CLUSTERS, 0);
    h.step({ kind: 'submit', reqId: 1, jobId: JOB, units: UNITS }, 10);
    h.advance(300, CLUSTERS);
    expect(h.core.jobView(JOB)!.lines.map((l) => l.epoch)).toEqual([1n]);
    const lastGrant = h.lastBeatOf('c1');
    expect(lastGrant).toBe(300);
    const alive = ['c2', 'c3'];
    h.fly(alive);
    const steps = h.advance(10_000, alive, (l) => calls(l.out).some((c) => c.req.kind === 'restoreJob'));
    // Declared failed < 1 s after its last heartbeat: the recovery is on disk in that very step, and the round in flight is aborted.
    const failed = steps.find((l) => l.out.persist.some((p) => p.jobs[0]!.lost.includes('c1')))!;
    expect(failed.t).toBe(762);
    expect(h.core.failuresDetected).toBe(1);
    expect(failed.out.persist).toEqual([expect.objectContaining({ reason: 'state', jobs: [expect.objectContaining({ state: 'recovering', lost: ['c1'], clusters: ALL_C1 })] })]);
    // No restore before last grant + clusterLeaseMs + agentLeaseMs + margin.
    const restores = ofKind(steps, 'restoreJob');
    const safeAt = lastGrant + LEASE_WAIT_MS;
    expect(safeAt).toBe(2100);
    expect(restores.map((c) => c.t)).toEqual([safeAt, safeAt]);
    // The plan (c1's units on c2, which has the most room) is on disk in the step that asks for the restores.
    const restoring = steps.find((l) => calls(l.out).some((c) => c.req.kind === 'restoreJob'))!;
    const moved = { ...ALL_C1, u0: 'c2', u3: 'c2' };
    expect(restoring.out.persist).toEqual([expect.objectContaining({ reason: 'state', jobs: [expect.objectContaining({ state: 'recovering', clusters: moved })] })]);
    expect(restores.map((c) => [c.to, c.req])).toEqual([
      ['c2', { kind: 'restoreJob', jobId: JOB, units: ['u0', 'u1', 'u3', 'u4'], epoch: 1n, adopt: [{ fromCluster: 'c1', epoch: 1n, units: ['u0', 'u3'] }], gen: 1, leaseMs: GRID_CONFIG.clusterLeaseMs }],
      ['c3', { kind: 'restoreJob', jobId: JOB, units: ['u2', 'u5'], epoch: 1n, adopt: [], gen: 1, leaseMs: GRID_CONFIG.clusterLeaseMs }],
    ]);
    expect(h.core.jobView(JOB)).toMatchObject({ state: 'running' }); // the autopilot answered ok
    expect(Object.fromEntries(h.core.jobView(JOB)!.clusters)).toEqual(moved);
  });

  it('a restore answered busy is asked again retryMs later', () => {
    const h = new GridHarness();
    submitted(h);
    commitRound(h, nextRound(h).out);
    h.reports.set('c3', [{ jobId: JOB, state: 'fenced', gen: 0 }]);
    const out = h.heartbeat('c3', {}, h.nowMs + 1);
    const [r1, r2, r3] = calls(out);
    h.answer(r1!, { kind: 'ok' });
    h.answer(r2!, { kind: 'busy', reason: 'restarting' });
    h.answer(r3!, { kind: 'ok' });
    const busyAt = h.nowMs;
    h.reports.delete('c3');
    const steps = h.advance(busyAt + GRID_CONFIG.retryMs, CLUSTERS);
    expect(ofKind(steps, 'restoreJob').map((c) => [c.t, c.to])).toEqual([[busyAt + GRID_CONFIG.retryMs, 'c2']]);
  });
});

describe('GridSupervisor: rollback and walk-back', () => {
  it('a share reported fenced rolls every share back to the last line, at once (nothing lost, no lease to wait out)', () => {
    const h = new GridHarness();
    submitted(h);
    commitRound(h, nextRound(h).out);
    h.reports.set('c3', [{ jobId: JOB, state: 'fenced', gen: 0 }]);
    const out = h.heartbeat('c3', {}, h.nowMs + 1);
    expect(out.send.map((s) => [s.to, s.call.req])).toEqual(CLUSTERS.map((c) => [c, { kind: 'restoreJob', jobId: JOB, units: SHARES[c]!, epoch: 1n, adopt: [], gen: 1, leaseMs: GRID_CONFIG.clusterLeaseMs }]));
    // One catalog write a step (a later one would replace it whole): the rows as the step left them.
    expect(out.persist.map((p) => [p.reason, p.jobs[0]!.state])).toEqual([['state', 'recovering']]);
    expect(h.core.jobState(JOB)).toBe('recovering');
  });

  it('a share reported unit-failed (the job\'s restart policy failed it there) fails the job and stops every other share: nothing moves', () => {
    const h = new GridHarness();
    submitted(h);
    commitRound(h, nextRound(h).out);
    h.reports.set('c2', [{ jobId: JOB, state: 'unit-failed', gen: 0 }]);
    const out = h.heartbeat('c2', {}, h.nowMs + 1);
    expect(h.core.jobState(JOB)).toBe('failed');
    expect(h.core.jobView(JOB)!.lastError).toBe('a unit failed in cluster c2 and the job\'s restart policy fails the job');
    expect(out.send.map((s) => [s.to, s.call.req.kind])).toEqual(CLUSTERS.map((c) => [c, 'stopJob']));
    expect(out.persist.map((p) => p.jobs[0]!.state)).toEqual(['failed']);
  });

  it('a restore answered corrupt drops every line at or above the damaged epoch and restores every share from the one before', () => {
    const h = new GridHarness();
    submitted(h);
    commitRound(h, nextRound(h).out);
    commitRound(h, nextRound(h).out);
    expect(h.core.jobView(JOB)!.lines.map((l) => l.epoch)).toEqual([1n, 2n]);
    h.reports.set('c3', [{ jobId: JOB, state: 'fenced', gen: 0 }]);
    const out = h.heartbeat('c3', {}, h.nowMs + 1);
    h.reports.delete('c3');
    const [r1, r2, r3] = calls(out);
    expect(r2!.req).toMatchObject({ kind: 'restoreJob', epoch: 2n });
    const back = h.answer(r2!, { kind: 'corrupt', store: 'c2', epoch: 2n, reason: 'crc mismatch' });
    expect(h.core.jobView(JOB)!.lines.map((l) => l.epoch)).toEqual([1n]);
    expect(back.send.map((s) => [s.to, s.call.req])).toEqual(CLUSTERS.map((c) => [c, { kind: 'restoreJob', jobId: JOB, units: SHARES[c]!, epoch: 1n, adopt: [], gen: 2, leaseMs: GRID_CONFIG.clusterLeaseMs }]));
    expect(back.persist.at(-1)!.jobs[0]!.lines.map((l) => l.epoch)).toEqual([1n]); // the walk-back is on disk before the restores leave
    // The answers to the first attempt are stale now.
    expect(h.answer(r1!, { kind: 'ok' })).toEqual({ persist: [], send: [], reply: [] });
    expect(h.answer(r3!, { kind: 'ok' })).toEqual({ persist: [], send: [], reply: [] });
    let last: GridStep | null = null;
    for (const c of calls(back)) last = h.answer(c, { kind: 'ok' });
    expect(h.core.jobState(JOB)).toBe('running');
    // The end of the recovery and the next round's epoch (parent: line 1, G3) are in the step's one write.
    expect(last!.persist.map((p) => [p.jobs[0]!.state, p.jobs[0]!.highestEpoch])).toEqual([['running', '3']]);
    expect(last!.send.map((s) => s.call.req)).toEqual(CLUSTERS.map(() => ({ kind: 'prepare', jobId: JOB, epoch: 3n, parentEpoch: 1n })));
  });

  it('a cluster back with a new incarnation lost its shares: the job recovers, the lease wait counted from its last grant', () => {
    const h = new GridHarness();
    submitted(h);
    commitRound(h, nextRound(h).out);
    h.advance(200, CLUSTERS);
    // Its last grant: its last answered heartbeat, or the submit's answer (at 20) if later (G1); an answered
    // submit no longer bounds it by its send plus the call timeout (shell-inputs.test.ts: the unanswered case).
    const lastGrant = Math.max(h.lastBeatOf('c2'), 20);
    expect(lastGrant).toBeGreaterThan(20);
    const out = h.registerCluster('c2', 2n, 210);
    expect(out.persist).toEqual([expect.objectContaining({ jobs: [expect.objectContaining({ state: 'recovering', lost: ['c2'] })] })]);
    expect(calls(out).filter((c) => c.req.kind === 'restoreJob')).toEqual([]);
    const steps = h.advance(5000, CLUSTERS, (l) => calls(l.out).some((c) => c.req.kind === 'restoreJob'));
    expect(ofKind(steps, 'restoreJob')[0]!.t).toBe(lastGrant + LEASE_WAIT_MS);
  });
});
