import { describe, expect, it } from 'vitest';
import { calls, ClusterHarness, finishRound, JOB, LJOB, localAnswers, localJob, LUNITS, NODES, runningJob, SPEC } from './harness.js';

// Exact-output tests of job control at the cluster (core/supervisor-control.ts):
// `gridckpt job cancel|delete|restore --cluster` on a job the cluster runs
// on its own.

const control = (h: ClusterHarness, action: 'cancel' | 'delete' | 'restore', epoch: bigint | null = null, t = h.nowMs) =>
  h.local({ kind: 'control', jobId: LJOB, action, epoch }, t);

/** The local job running with epoch 1 committed (full). */
function withEpoch(h: ClusterHarness): void {
  localJob(h);
  const cp = h.local({ kind: 'checkpoint', jobId: LJOB }, 30);
  finishRound(h, cp.out);
  expect(h.core.jobView(LJOB)!.committed).toEqual([1n]);
}

describe('ClusterSupervisor: job control, cancel', () => {
  it('stops the job (its row saved stopped before the stops leave), answers once every node answered, and renews its lease no more', () => {
    const h = new ClusterHarness();
    localJob(h);
    const c = control(h, 'cancel', null, 30);
    expect(h.core.jobState(LJOB)).toBe('stopped');
    expect(h.rows.at(-1)).toMatchObject({ t: 30, row: { state: 'stopped', lastError: 'cancelled by an operator' } });
    const stops = calls(c.out);
    expect(stops.map((s) => [s.to, s.req.kind])).toEqual(NODES.map((n) => [n, 'stopJob']));
    expect(localAnswers(c.out)).toEqual([]);
    h.answer(stops[0]!, { kind: 'ok' }, 31);
    h.step({ kind: 'agentUnreachable', node: stops[1]!.to, reqId: stops[1]!.reqId, reason: 'deadline exceeded' }, 32);
    const last = h.answer(stops[2]!, { kind: 'ok' }, 33);
    expect(localAnswers(last)).toEqual([{ reqId: c.reqId, answer: { kind: 'controlled', state: 'stopped', confirmed: ['c1n1', 'c1n3'], unconfirmed: ['c1n2'] } }]);
    // Its nodes' heartbeats no longer renew its lease: c1n2's units stop by themselves when it lapses.
    const beat = h.heartbeat('c1n2', {}, 40);
    expect(beat.reply).toEqual([{ to: 'c1n2', kind: 'beat', seq: expect.any(Number), answer: { known: true, leasedJobs: [], leaseMs: 500 } }]);
  });

  it('aborts the round under way; a second cancel joins the first; a cancel of a stopped job answers at once', () => {
    const h = new ClusterHarness();
    localJob(h);
    const cp = h.local({ kind: 'checkpoint', jobId: LJOB }, 30);
    expect(calls(cp.out).map((x) => x.req.kind)).toEqual(['prepare', 'prepare', 'prepare']);
    const c = control(h, 'cancel', null, 31);
    expect(localAnswers(c.out)).toEqual([{ reqId: cp.reqId, answer: { kind: 'refused', reason: expect.stringContaining('cancelled by an operator'), code: 'aborted' } }]);
    expect(calls(c.out).map((x) => x.req.kind)).toEqual(['abort', 'abort', 'abort', 'stopJob', 'stopJob', 'stopJob']);
    const c2 = control(h, 'cancel', null, 32);
    expect(localAnswers(c2.out)).toEqual([]);
    let last = c2.out;
    for (const s of calls(c.out).filter((x) => x.req.kind === 'stopJob')) last = h.answer(s, { kind: 'ok' }, 33);
    const answer = { kind: 'controlled', state: 'stopped', confirmed: NODES, unconfirmed: [] };
    expect(localAnswers(last)).toEqual([{ reqId: c.reqId, answer }, { reqId: c2.reqId, answer }]);
    const again = control(h, 'cancel', null, 40);
    expect(localAnswers(again.out)).toEqual([{ reqId: again.reqId, answer: { ...answer, confirmed: [] } }]);
    expect(calls(again.out)).toEqual([]);
  });

  it('is refused for an unknown job (not-found) and for a grid job\'s share (failed-precondition, naming --grid)', () => {
    const h = new ClusterHarness();
    runningJob(h);
    const unknown = h.local({ kind: 'control', jobId: 'nope', action: 'cancel', epoch: null });
    expect(localAnswers(unknown.out)).toEqual([{ reqId: unknown.reqId, answer: { kind: 'refused', reason: 'unknown job "nope" in cluster c1', code: 'not-found' } }]);
    const share = h.local({ kind: 'control', jobId: JOB, action: 'delete', epoch: null });
    expect(localAnswers(share.out)).toEqual([{ reqId: share.reqId, answer: { kind: 'refused', reason: `job ${JOB} is grid-managed: control it at the grid (gridckpt job delete --grid ADDR ${JOB})`, code: 'failed-precondition' } }]);
    expect(h.core.jobState(JOB)).toBe('running');
  });
});

describe('ClusterSupervisor: job control, restore', () => {
  it('restarts the job from its newest committed epoch and answers with it', () => {
    const h = new ClusterHarness();
    withEpoch(h);
    const r = control(h, 'restore', null, 40);
    expect(h.core.jobState(LJOB)).toBe('recovering');
    let last = r.out;
    for (const s of calls(r.out)) last = h.answer(s, { kind: 'ok' }, 41);
    const starts = calls(last);
    expect(starts.map((s) => s.req.kind === 'startJob' && s.req.sources)).toEqual(NODES.map((_, i) => [{ store: 'c1', epoch: 1n, units: [LUNITS[i]] }]));
    for (const s of starts) last = h.answer(s, { kind: 'ok' }, 42);
    expect(localAnswers(last)).toEqual([{ reqId: r.reqId, answer: { kind: 'ok', epoch: 1n, skipped: [] } }]);
    expect(h.core.jobState(LJOB)).toBe('running');
  });

  it('refuses an epoch that is not committed before anything is stopped (not-found), and a restore during a cancel', () => {
    const h = new ClusterHarness();
    withEpoch(h);
    const bad = control(h, 'restore', 999n, 40);
    expect(localAnswers(bad.out)).toEqual([{ reqId: bad.reqId, answer: { kind: 'refused', reason: 'epoch 999 of job solo is not a committed epoch in cluster c1 (committed: 1)', code: 'not-found' } }]);
    expect(calls(bad.out)).toEqual([]);
    expect(h.core.jobState(LJOB)).toBe('running');
    control(h, 'cancel', null, 41);
    const during = control(h, 'restore', null, 42);
    expect(localAnswers(during.out)).toEqual([{ reqId: during.reqId, answer: { kind: 'refused', reason: 'job solo is being cancelled; restore it once the cancel is answered', code: 'failed-precondition' } }]);
  });

  it('brings a cancelled job back; with no epoch committed its units start anew', () => {
    const h = new ClusterHarness();
    localJob(h);
    const c = control(h, 'cancel', null, 30);
    for (const s of calls(c.out)) h.answer(s, { kind: 'ok' }, 31);
    const r = control(h, 'restore', null, 40);
    let last = r.out;
    for (const s of calls(r.out)) last = h.answer(s, { kind: 'ok' }, 41);
    expect(calls(last).map((s) => s.req.kind === 'startJob' && s.req.sources)).toEqual([[], [], []]);
    for (const s of calls(last)) last = h.answer(s, { kind: 'ok' }, 42);
    expect(localAnswers(last)).toEqual([{ reqId: r.reqId, answer: { kind: 'ok', epoch: null, skipped: [] } }]);
    expect(h.core.jobView(LJOB)!.lastError).toBe('restarted: restored by an operator from the beginning (no committed epoch)');
  });
});

describe('ClusterSupervisor: job control, delete', () => {
  it('cancels, then forgets the job (its row goes, its highest epoch stays); a job submitted again under its id numbers above it and starts where the old one ran (C1, C3)', () => {
    const h = new ClusterHarness();
    withEpoch(h);
    const d = control(h, 'delete', null, 40);
    let last = d.out;
    for (const s of calls(d.out)) last = h.answer(s, { kind: 'ok' }, 41);
    expect(localAnswers(last)).toEqual([{ reqId: d.reqId, answer: { kind: 'controlled', state: 'deleted', confirmed: NODES, unconfirmed: [] } }]);
    expect(h.core.jobState(LJOB)).toBeNull();
    expect(h.core.jobIds()).toEqual([]);
    // Its row leaves the table in the step that answers (the epochs it reserved, 1..64, stay known).
    expect(h.forgotten).toEqual([{ t: 41, jobId: LJOB, highestEpoch: 64n }]);
    expect(h.events.filter((e) => e.kind === 'jobForgotten')).toEqual([{ kind: 'jobForgotten', jobId: LJOB, highestEpoch: 64n }]);
    // Submitted again: stops go first to where the deleted job ran, then the starts; its first epoch is above 64.
    const again = h.local({ kind: 'submitJob', jobId: LJOB, units: LUNITS, ...SPEC }, 50);
    expect(calls(again.out).map((s) => [s.to, s.req.kind])).toEqual(NODES.map((n) => [n, 'stopJob']));
    last = again.out;
    for (const s of calls(again.out)) last = h.answer(s, { kind: 'ok' }, 51);
    expect(calls(last).map((s) => s.to)).toEqual(NODES);
    for (const s of calls(last)) last = h.answer(s, { kind: 'ok' }, 52);
    expect(h.core.jobState(LJOB)).toBe('running');
    const cp = h.local({ kind: 'checkpoint', jobId: LJOB }, 60);
    expect(calls(cp.out).map((s) => s.req.kind === 'prepare' && s.req.epoch)).toEqual([65n, 65n, 65n]);
  });

  it('a restarted coordinator keeps a deleted job\'s highest epoch from its table (C3)', () => {
    const h = new ClusterHarness({ incarnation: 2n }, { rows: [], committed: new Map(), forgotten: new Map([[LJOB, 70n]]) });
    localJob(h);
    const cp = h.local({ kind: 'checkpoint', jobId: LJOB }, 30);
    expect(calls(cp.out).map((s) => s.req.kind === 'prepare' && s.req.epoch)).toEqual([71n, 71n, 71n]);
  });
});
