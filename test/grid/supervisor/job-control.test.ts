import { describe, expect, it } from 'vitest';
import { leaseMarginMs } from '../../../src/detector/lease.js';
import type { GridStep } from '../../../src/grid/core/supervisor-types.js';
import { calls, CLUSTERS, commitRound, GRID_CONFIG, GridHarness, JOB, nextRound, submitted, UNITS } from './harness.js';

// Exact-output tests of job control at the grid (core/supervisor-control.ts):
// `gridckpt job cancel|delete|restore --grid`.

const answers = (out: GridStep) => out.reply.flatMap((r) => (r.kind === 'controlled' ? [{ reqId: r.reqId, answer: r.answer }] : []));
const control = (h: GridHarness, reqId: number, action: 'cancel' | 'delete' | 'restore', line: bigint | null = null, t = h.nowMs) =>
  h.step({ kind: 'control', reqId, jobId: JOB, action, line }, t);

/** The job running with lines 1 and 2. */
function withLines(h: GridHarness): void {
  submitted(h);
  commitRound(h, nextRound(h).out);
  commitRound(h, nextRound(h).out);
  expect(h.core.jobView(JOB)!.lines.map((l) => l.epoch)).toEqual([1n, 2n]);
}

describe('GridSupervisor: job control, cancel', () => {
  it('writes the job stopped before the stops leave, answers once every cluster answered, and renews no lease of it', () => {
    const h = new GridHarness();
    withLines(h);
    const out = control(h, 50, 'cancel');
    expect(h.core.jobState(JOB)).toBe('stopped');
    expect(out.persist).toHaveLength(1);
    h.persistAll(out);
    expect(h.disk[0]).toMatchObject({ jobId: JOB, state: 'stopped', lastError: 'cancelled by an operator' });
    const stops = calls(out);
    expect(stops.map((c) => [c.to, c.req.kind])).toEqual(CLUSTERS.map((c) => [c, 'stopJob']));
    expect(answers(out)).toEqual([]);
    h.answer(stops[0]!, { kind: 'ok' });
    h.step({ kind: 'clusterUnreachable', cluster: 'c2', reqId: stops[1]!.reqId, reason: 'deadline exceeded' });
    const last = h.answer(stops[2]!, { kind: 'ok' });
    expect(answers(last)).toEqual([{ reqId: 50, answer: { kind: 'done', state: 'stopped', line: null, passedOver: [], confirmed: ['c1', 'c3'], unconfirmed: ['c2'] } }]);
    const beat = h.heartbeat('c2', {}, h.nowMs + 10);
    expect(beat.reply).toEqual([{ to: 'c2', kind: 'beat', seq: expect.any(Number), answer: { known: true, leasedJobs: [], leaseMs: GRID_CONFIG.clusterLeaseMs, fence: { term: 0n, incarnation: 1n } } }]);
    // No round starts for a stopped job.
    const later = h.advance(h.nowMs + 2_000, CLUSTERS);
    expect(later.flatMap((l) => calls(l.out))).toEqual([]);
  });

  it('aborts the round under way and refuses its waiting checkpoint requests', () => {
    const h = new GridHarness();
    withLines(h);
    const round = nextRound(h);
    h.persistAll(round.out);
    const cp = h.step({ kind: 'checkpoint', reqId: 7, jobId: JOB });
    expect(cp.reply).toEqual([]);
    const out = control(h, 51, 'cancel');
    expect(calls(out).map((c) => c.req.kind)).toEqual(['abort', 'abort', 'abort', 'stopJob', 'stopJob', 'stopJob']);
    expect(out.reply.filter((r) => r.kind === 'checkpointed')).toEqual([
      { to: 'operator', kind: 'checkpointed', reqId: 7, answer: { kind: 'refused', code: 'failed-precondition', reason: 'job bank was cancelled by an operator' } },
    ]);
  });

  it('a cancel before every share started answers the submit started (the job is recorded, its spec kept for a restore)', () => {
    const h = new GridHarness();
    h.step({ kind: 'tick' }, 0);
    h.register(CLUSTERS, 0);
    const sub = h.step({ kind: 'submit', reqId: 1, jobId: JOB, units: UNITS }, 10);
    h.persistAll(sub);
    h.answer(calls(sub)[0]!, { kind: 'ok' }, 15);
    const out = control(h, 52, 'cancel', null, 16);
    expect(out.reply.filter((r) => r.kind === 'submitted')).toEqual([{ to: 'operator', kind: 'submitted', reqId: 1, ok: true, reason: 'started; cancelled by an operator' }]);
    expect(h.core.jobState(JOB)).toBe('stopped');
  });

  it('refuses an unknown job (not-found)', () => {
    const h = new GridHarness();
    submitted(h);
    expect(answers(h.step({ kind: 'control', reqId: 9, jobId: 'nope', action: 'cancel', line: null }))).toEqual([
      { reqId: 9, answer: { kind: 'refused', code: 'not-found', reason: 'unknown job "nope" on grid grid' } },
    ]);
  });
});

describe('GridSupervisor: job control, restore', () => {
  it('a named line drops the newer ones and restores every share from it; answered once every share runs again', () => {
    const h = new GridHarness();
    withLines(h);
    const out = control(h, 60, 'restore', 1n);
    expect(h.core.jobState(JOB)).toBe('recovering');
    expect(h.core.jobView(JOB)!.lines.map((l) => l.epoch)).toEqual([1n]);
    // No cluster was lost: no lease to wait out, the plan is written and the restores leave in the same step.
    const restores = calls(out);
    expect(restores.map((c) => [c.to, c.req.kind === 'restoreJob' && c.req.epoch])).toEqual(CLUSTERS.map((c) => [c, 1n]));
    h.persistAll(out);
    let last = out;
    for (const c of restores) last = h.answer(c, { kind: 'ok' });
    expect(answers(last)).toEqual([{ reqId: 60, answer: { kind: 'done', state: 'running', line: 1n, passedOver: [], confirmed: [], unconfirmed: [] } }]);
    expect(h.core.jobState(JOB)).toBe('running');
  });

  it('refuses a line that is not one (not-found) before anything changes, and a restore during a recovery', () => {
    const h = new GridHarness();
    withLines(h);
    expect(answers(control(h, 61, 'restore', 7n))).toEqual([
      { reqId: 61, answer: { kind: 'refused', code: 'not-found', reason: 'line 7 of job bank is not a recovery line of grid grid (lines: 1, 2)' } },
    ]);
    expect(h.core.jobState(JOB)).toBe('running');
    control(h, 62, 'restore');
    expect(answers(control(h, 63, 'restore'))).toEqual([
      { reqId: 63, answer: { kind: 'refused', code: 'failed-precondition', reason: 'job bank is recovering (restored by an operator from line 2); restore it once that ends' } },
    ]);
  });

  it('brings a cancelled job back from its newest line', () => {
    const h = new GridHarness();
    withLines(h);
    const c = control(h, 64, 'cancel');
    for (const s of calls(c)) h.answer(s, { kind: 'ok' });
    const r = control(h, 65, 'restore');
    expect(h.core.jobState(JOB)).toBe('recovering');
    expect(calls(r).map((x) => x.req.kind === 'restoreJob' && x.req.epoch)).toEqual([2n, 2n, 2n]);
  });
});

describe('GridSupervisor: job control, delete', () => {
  it('cancels, forgets the job and keeps its highest epoch in the catalog; a job under its id numbers above it (G3)', () => {
    const h = new GridHarness();
    withLines(h);
    const d = control(h, 70, 'delete');
    let last = d;
    for (const s of calls(d)) last = h.answer(s, { kind: 'ok' });
    expect(answers(last)).toEqual([{ reqId: 70, answer: { kind: 'done', state: 'deleted', line: null, passedOver: [], confirmed: CLUSTERS, unconfirmed: [] } }]);
    expect(h.core.jobState(JOB)).toBeNull();
    expect(last.persist).toEqual([{ kind: 'catalog', jobs: [], forgotten: { bank: '2' }, reason: 'state', step: expect.any(Number) }]);
    h.persistAll(last);
    const again = h.step({ kind: 'submit', reqId: 71, jobId: JOB, units: UNITS }, h.nowMs + 1);
    h.persistAll(again);
    for (const c of calls(again)) h.answer(c, { kind: 'ok' });
    const round = nextRound(h);
    expect(calls(round.out).map((c) => c.req.kind === 'prepare' && c.req.epoch)).toEqual([3n, 3n, 3n]);
  });

  it('a job under a deleted id waits while a cluster that did not confirm the stop may still run a share (G1)', () => {
    const h = new GridHarness();
    withLines(h);
    const d = control(h, 72, 'delete');
    const stops = calls(d);
    h.answer(stops[0]!, { kind: 'ok' });
    h.answer(stops[1]!, { kind: 'ok' });
    const lastGrant = h.lastBeatOf('c3');
    h.step({ kind: 'clusterUnreachable', cluster: 'c3', reqId: stops[2]!.reqId, reason: 'deadline exceeded' });
    const safeAt = lastGrant + GRID_CONFIG.clusterLeaseMs + GRID_CONFIG.agentLeaseMs + leaseMarginMs(GRID_CONFIG.clusterLeaseMs + GRID_CONFIG.agentLeaseMs);
    const early = h.step({ kind: 'submit', reqId: 73, jobId: JOB, units: UNITS }, h.nowMs + 1);
    expect(early.reply).toEqual([{ to: 'operator', kind: 'submitted', reqId: 73, ok: false, code: 'unavailable', reason: `a deleted job bank may still run on a cluster that did not confirm its stop, for ${safeAt - h.nowMs} ms more (its leases lapse then); submit again after that` }]);
    const late = h.step({ kind: 'submit', reqId: 74, jobId: JOB, units: UNITS }, safeAt);
    expect(calls(late).map((c) => c.req.kind)).toEqual(['submitJob', 'submitJob', 'submitJob']);
  });

  it('a restarted grid keeps a deleted job\'s highest epoch from its catalog, and holds its id until the old leases lapsed', () => {
    const h = new GridHarness({ incarnation: 2n }, [], 0, new Map(), new Map([[JOB, 9n]]));
    h.step({ kind: 'tick' }, 0);
    h.register(CLUSTERS, 0);
    expect(h.step({ kind: 'submit', reqId: 80, jobId: JOB, units: UNITS }, 10).reply).toMatchObject([{ kind: 'submitted', ok: false, code: 'unavailable' }]);
    const hold = GRID_CONFIG.callTimeoutMs + GRID_CONFIG.clusterLeaseMs + GRID_CONFIG.agentLeaseMs + leaseMarginMs(GRID_CONFIG.clusterLeaseMs + GRID_CONFIG.agentLeaseMs);
    h.advance(hold, CLUSTERS);
    const out = h.step({ kind: 'submit', reqId: 81, jobId: JOB, units: UNITS }, hold);
    h.persistAll(out);
    for (const c of calls(out)) h.answer(c, { kind: 'ok' });
    expect(calls(nextRound(h).out).map((c) => c.req.kind === 'prepare' && c.req.epoch)).toEqual([10n, 10n, 10n]);
  });
});
