import { describe, expect, it } from 'vitest';
import type { ClusterStep } from '../../../src/cluster/core/supervisor-types.js';
import {
  beatAnswer, calls, callsOf, ClusterHarness, finishRound, G, gridAnswers, LJOB, localAnswers, localJob, LUNITS, NODES, SPEC, submitLocal, type Logged,
} from './harness.js';

// Exact-output tests of the cluster supervisor core's local (standalone)
// jobs: submit, periodic rounds, a client's checkpoint, the final round
// (C5), their independence from the grid (C6), and the events and job table
// rows they produce (C9). Invariants are those of supervisor.ts's header.

const prepares = (steps: Logged[]) => callsOf(steps).filter((c) => c.req.kind === 'prepare');
const isPrepare = (l: Logged) => calls(l.out).some((c) => c.req.kind === 'prepare');

describe('ClusterSupervisor: local jobs, submit', () => {
  it('places the units over the alive nodes, starts them through the restart machine and answers ok once every start is', () => {
    const h = new ClusterHarness();
    const sub = submitLocal(h);
    expect(sub.out.send).toEqual([
      { to: 'c1n1', call: { reqId: 1, from: 'c1', incarnation: 1n, req: { kind: 'startJob', jobId: LJOB, units: ['s0'], sources: [], leaseMs: 500, gen: G(1) } } },
      { to: 'c1n2', call: { reqId: 2, from: 'c1', incarnation: 1n, req: { kind: 'startJob', jobId: LJOB, units: ['s1'], sources: [], leaseMs: 500, gen: G(2) } } },
      { to: 'c1n3', call: { reqId: 3, from: 'c1', incarnation: 1n, req: { kind: 'startJob', jobId: LJOB, units: ['s2'], sources: [], leaseMs: 500, gen: G(3) } } },
    ]);
    expect(sub.out.reply).toEqual([]);
    expect(h.core.jobView(LJOB)).toMatchObject({ state: 'starting', units: LUNITS, local: SPEC, gridManaged: false, committed: [], lastEpoch: null, recoveries: 0 });
    const [a, b, c] = calls(sub.out);
    expect(h.answer(a!, { kind: 'ok' }, 15).reply).toEqual([]);
    expect(h.answer(b!, { kind: 'ok' }, 16).reply).toEqual([]);
    expect(h.answer(c!, { kind: 'ok' }, 17).reply).toEqual([{ to: 'local', kind: 'answer', reqId: sub.reqId, answer: { kind: 'ok' } }]);
    // Its nodes' heartbeat answers name it (their leases); the grid hears nothing of it.
    expect(beatAnswer(h.heartbeat('c1n2', {}, 18))).toEqual({ known: true, leasedJobs: [LJOB], leaseMs: 500 });
    const beat = h.advance(50, []).flatMap((l) => l.out.send).flatMap((s) => ('heartbeat' in s ? [s.heartbeat] : []));
    expect(beat).toEqual([expect.objectContaining({ jobs: [], freeUnits: 9 })]);
    expect(h.events.filter((e) => e.kind === 'jobState' || e.kind === 'jobPlaced')).toEqual([
      { kind: 'jobState', jobId: LJOB, from: null, to: 'starting', reason: 'submitted by a local client' },
      { kind: 'jobPlaced', jobId: LJOB, placement: { s0: 'c1n1', s1: 'c1n2', s2: 'c1n3' } },
      { kind: 'jobState', jobId: LJOB, from: 'starting', to: 'running', reason: 'started' },
    ]);
  });

  it('refuses a live id (already-exists), no units or bad numbers (invalid-argument), and no room (resource-exhausted)', () => {
    const h = new ClusterHarness();
    localJob(h);
    const refusal = (req: Parameters<ClusterHarness['local']>[0]) => {
      const r = h.local(req);
      expect(calls(r.out)).toEqual([]);
      return localAnswers(r.out).map((x) => x.answer);
    };
    expect(refusal({ kind: 'submitJob', jobId: LJOB, units: ['x'], ...SPEC })).toEqual([{ kind: 'refused', reason: 'job solo is already running in cluster c1', code: 'already-exists' }]);
    expect(refusal({ kind: 'submitJob', jobId: 'other', units: [], ...SPEC })).toEqual([{ kind: 'refused', reason: 'job other has no units', code: 'invalid-argument' }]);
    expect(refusal({ kind: 'submitJob', jobId: 'other', units: ['a'], intervalMs: 100, fullEvery: 0 })).toEqual([{ kind: 'refused', reason: 'bad fullEvery 0: expected an integer >= 1', code: 'invalid-argument' }]);
    expect(refusal({ kind: 'submitJob', jobId: 'other', units: ['a'], intervalMs: -1, fullEvery: 1 })).toEqual([{ kind: 'refused', reason: 'bad checkpoint interval -1 ms: expected an integer >= 0', code: 'invalid-argument' }]);
    // 3 nodes of 4 units hold the job's 3: room for 9 more, not 10.
    const ten = Array.from({ length: 10 }, (_, i) => `u${i}`);
    expect(refusal({ kind: 'submitJob', jobId: 'big', units: ten, ...SPEC })).toEqual([{ kind: 'refused', reason: '10 units do not fit: the alive nodes have room for 9', code: 'resource-exhausted' }]);
    expect(h.core.jobIds()).toEqual([LJOB]);
  });

  it('is the grid\'s business in no way: its calls naming the job are refused, and no grid lease fences it (C6)', () => {
    const h = new ClusterHarness();
    h.gridAnswers = false;
    localJob(h, { intervalMs: 0, fullEvery: 1 });
    const prep = h.grid({ kind: 'prepare', jobId: LJOB, epoch: 5n, parentEpoch: null });
    expect(gridAnswers(prep.out)).toEqual([{ reqId: prep.reqId, answer: { kind: 'refused', reason: 'job solo is a local job of cluster c1 (running), not the grid\'s' } }]);
    const stop = h.grid({ kind: 'stopJob', jobId: LJOB });
    expect(calls(stop.out)).toEqual([]);
    // Long past any grid lease (1000 ms): still running, and still leased to its nodes.
    h.advance(3000, NODES);
    expect(h.core.jobState(LJOB)).toBe('running');
    expect(beatAnswer(h.heartbeat('c1n1', {}, 3001)).leasedJobs).toEqual([LJOB]);
  });
});

describe('ClusterSupervisor: local jobs, rounds', () => {
  it('runs a round every intervalMs after the last one ended; every fullEvery-th epoch is full (C3: the core chooses the epochs)', () => {
    const h = new ClusterHarness();
    localJob(h); // running at 20: the first round is due at 120
    const first = h.advance(1000, NODES, isPrepare);
    expect(prepares(first).map((c) => [c.t, c.to, c.req])).toEqual(NODES.map((n) => [120, n, { kind: 'prepare', jobId: LJOB, epoch: 1n, parentEpoch: null, full: true, lastCommitted: null }]));
    finishRound(h, first.at(-1)!.out);
    expect(h.core.jobView(LJOB)!.committed).toEqual([1n]);
    const second = h.advance(1000, NODES, isPrepare);
    expect(prepares(second).map((c) => [c.t, c.req])).toEqual(NODES.map(() => [220, { kind: 'prepare', jobId: LJOB, epoch: 2n, parentEpoch: 1n, full: false, lastCommitted: 1n }]));
    finishRound(h, second.at(-1)!.out);
    const third = h.advance(1000, NODES, isPrepare);
    expect(prepares(third).map((c) => [c.t, c.req])).toEqual(NODES.map(() => [320, { kind: 'prepare', jobId: LJOB, epoch: 3n, parentEpoch: null, full: true, lastCommitted: 2n }]));
    // A round nobody answers aborts at its prepare deadline; the next one is intervalMs after that end, with the next epoch.
    const fourth = h.advance(2000, NODES, (l) => calls(l.out).some((c) => c.req.kind === 'prepare' && c.req.epoch === 4n));
    expect(prepares(fourth).map((c) => c.t)).toEqual([320 + 300 + 100, 720, 720]);
    expect(h.core.jobView(LJOB)).toMatchObject({ committed: [1n, 2n], roundsCommitted: 2, roundsAborted: 1 });
    expect(h.events.filter((e) => e.kind === 'roundStarted').map((e) => e.kind === 'roundStarted' && [e.epoch, e.parentEpoch, e.full, e.participants])).toEqual([
      // Epoch 3 did not commit: the chain since the last full one is still 2 long, so 4 is full too.
      [1n, null, true, NODES], [2n, 1n, false, NODES], [3n, null, true, NODES], [4n, null, true, NODES],
    ]);
    expect(h.events.filter((e) => e.kind === 'roundFinished').map((e) => e.kind === 'roundFinished' && [e.outcome.epoch, e.outcome.kind])).toEqual([
      [1n, 'committed'], [2n, 'committed'], [3n, 'aborted'],
    ]);
  });

  it('a client\'s checkpoint starts a round at once and is answered with its outcome; one asked while it runs joins it (issue 8); refused when the job is not running', () => {
    const h = new ClusterHarness();
    localJob(h, { intervalMs: 0, fullEvery: 4 }); // no periodic rounds
    const cp = h.local({ kind: 'checkpoint', jobId: LJOB }, 30);
    expect(calls(cp.out).map((c) => [c.to, c.req])).toEqual(NODES.map((n) => [n, { kind: 'prepare', jobId: LJOB, epoch: 1n, parentEpoch: null, full: true, lastCommitted: null }]));
    const busy = h.local({ kind: 'checkpoint', jobId: LJOB }, 31);
    expect(busy.out).toEqual({ persist: [], send: [], reply: [] });
    const done = finishRound(h, cp.out, { pages: 2 });
    const committed = { kind: 'committed', epoch: 1n, parentEpoch: null, full: true, pages: 6, bytes: 3 * 4096, timings: expect.objectContaining({ totalMs: expect.any(Number) }) };
    expect(localAnswers(done)).toEqual([{ reqId: cp.reqId, answer: committed }, { reqId: busy.reqId, answer: committed }]);
    // The next builds on it; a node that refuses to prepare aborts it, and the answer says so.
    const cp2 = h.local({ kind: 'checkpoint', jobId: LJOB }, 40);
    const [a] = calls(cp2.out);
    expect(a!.req).toEqual({ kind: 'prepare', jobId: LJOB, epoch: 2n, parentEpoch: 1n, full: false, lastCommitted: 1n });
    const refused = h.answer(a!, { kind: 'refused', reason: 'freeze took over 100 ms' }, 41);
    expect(localAnswers(refused)).toEqual([{ reqId: cp2.reqId, answer: { kind: 'refused', reason: expect.stringMatching(/^round 2 aborted in preparing: .*c1n1.*freeze took over 100 ms/), code: 'aborted' } }]);
    const unknown = h.local({ kind: 'checkpoint', jobId: 'nope' });
    expect(localAnswers(unknown.out)).toEqual([{ reqId: unknown.reqId, answer: { kind: 'refused', reason: 'unknown job "nope" in cluster c1', code: 'not-found' } }]);
    // A restart (its agent on c1n2 restarted) makes it not running for a while.
    h.registerNode('c1n2', 2n, 4, 50);
    const recovering = h.local({ kind: 'checkpoint', jobId: LJOB }, 51);
    expect(localAnswers(recovering.out)).toEqual([{ reqId: recovering.reqId, answer: { kind: 'refused', reason: 'job solo is recovering in cluster c1', code: 'failed-precondition' } }]);
  });

  it('read-only votes: a client\'s checkpoint in which no node staged a page commits with no COMMIT sent: every part came with its PREPARED', () => {
    const h = new ClusterHarness();
    localJob(h, { intervalMs: 0, fullEvery: 4 });
    finishRound(h, h.local({ kind: 'checkpoint', jobId: LJOB }, 30).out);
    const cp = h.local({ kind: 'checkpoint', jobId: LJOB }, 40);
    const asked = calls(cp.out);
    const empty = (n: string) => ({ writer: n, epoch: 2n, units: [], pages: 0 });
    expect(h.answer(asked[0]!, { kind: 'prepared', pages: 0, bytes: 0, done: false, readOnly: { part: empty('c1n1') } }, 41)).toEqual({ persist: [], send: [], reply: [] });
    expect(h.answer(asked[1]!, { kind: 'prepared', pages: 0, bytes: 0, done: false, readOnly: { part: empty('c1n2') } }, 42)).toEqual({ persist: [], send: [], reply: [] });
    const last = h.answer(asked[2]!, { kind: 'prepared', pages: 0, bytes: 0, done: false, readOnly: { part: empty('c1n3') } }, 43);
    expect(last).toEqual({
      send: [], reply: [],
      persist: [{ kind: 'manifest', jobId: LJOB, epoch: 2n, parentEpoch: 1n, full: false, parts: NODES.map(empty), placement: { s0: 'c1n1', s1: 'c1n2', s2: 'c1n3' } }],
    });
    const done = h.step({ kind: 'persisted', what: last.persist[0]! }, 44);
    expect(localAnswers(done)).toEqual([{ reqId: cp.reqId, answer: { kind: 'committed', epoch: 2n, parentEpoch: 1n, full: false, pages: 0, bytes: 0, timings: { prepareMs: 3, holdMs: 0, commitMs: 0, manifestMs: 1, totalMs: 4 } } }]);
    expect(h.core.jobView(LJOB)!.committed).toEqual([1n, 2n]);
    // The next round names it as parent and as the newest committed epoch (the nodes settle their parts).
    const cp3 = h.local({ kind: 'checkpoint', jobId: LJOB }, 50);
    expect(calls(cp3.out)[0]!.req).toEqual({ kind: 'prepare', jobId: LJOB, epoch: 3n, parentEpoch: 2n, full: false, lastCommitted: 2n });
  });

  it('a grid-managed job\'s checkpoint is the grid\'s', () => {
    const h = new ClusterHarness();
    h.step({ kind: 'tick' }, 0);
    h.register(NODES, 0);
    h.grid({ kind: 'submitJob', jobId: 'bank', units: ['u0'], gen: 1, leaseMs: 0 }, 10);
    const cp = h.local({ kind: 'checkpoint', jobId: 'bank' }, 11);
    expect(localAnswers(cp.out)).toEqual([{ reqId: cp.reqId, answer: { kind: 'refused', reason: 'job bank is grid-managed: its rounds are the grid\'s', code: 'failed-precondition' } }]);
  });
});

describe('ClusterSupervisor: the end of a local job (C5)', () => {
  const complete = (h: ClusterHarness, t: number) => {
    NODES.forEach((n, i) => h.reports.set(n, [{ jobId: LJOB, state: 'completed', gen: G(i + 1) }]));
    let last: ClusterStep | null = null;
    for (const n of NODES) last = h.heartbeat(n, {}, t);
    return last!;
  };

  it('is completed only once a final round committed with every node done at its cut', () => {
    const h = new ClusterHarness();
    localJob(h, { intervalMs: 0, fullEvery: 4 });
    NODES.forEach((n, i) => h.reports.set(n, [{ jobId: LJOB, state: 'completed', gen: G(i + 1) }]));
    expect(calls(h.heartbeat('c1n1', {}, 30))).toEqual([]);
    expect(calls(h.heartbeat('c1n2', {}, 30))).toEqual([]);
    // The last node's report: the final round starts at once.
    const final = h.heartbeat('c1n3', {}, 30);
    expect(calls(final).map((c) => [c.to, c.req])).toEqual(NODES.map((n) => [n, { kind: 'prepare', jobId: LJOB, epoch: 1n, parentEpoch: null, full: true, lastCommitted: null }]));
    // A client's checkpoint meanwhile is refused.
    expect(localAnswers(h.local({ kind: 'checkpoint', jobId: LJOB }, 31).out)[0]!.answer).toMatchObject({ kind: 'refused', code: 'aborted' });
    // One node was not done at the cut (its report came from before a restore, say): committed, but not the end.
    let last = final;
    const [a, b, c] = calls(final);
    h.answer(a!, { kind: 'prepared', pages: 1, bytes: 1, done: true }, 32);
    h.answer(b!, { kind: 'prepared', pages: 1, bytes: 1, done: false }, 32);
    last = h.answer(c!, { kind: 'prepared', pages: 1, bytes: 1, done: true }, 32);
    for (const x of calls(last)) last = h.answer(x, { kind: 'durable', part: { writer: x.to, epoch: 1n, units: [], pages: 1 } }, 33);
    h.step({ kind: 'persisted', what: last.persist[0]! }, 34);
    expect(h.core.jobState(LJOB)).toBe('running');
    // Another attempt after a pause of 250 ms; every node done at its cut: completed.
    const retry = h.advance(1000, NODES, isPrepare).at(-1)!;
    expect(retry.t).toBe(34 + 250);
    finishRound(h, retry.out, { done: true });
    expect(h.core.jobView(LJOB)).toMatchObject({ state: 'completed', lastEpoch: 2n });
    expect(h.events.filter((e) => e.kind === 'jobState').at(-1)).toEqual({ kind: 'jobState', jobId: LJOB, from: 'running', to: 'completed', reason: 'completed: its end state is epoch 2' });
    // No more rounds.
    expect(prepares(h.advance(3000, NODES))).toEqual([]);
  });

  it('a late PREPARED(done) of an aborted final round does not count for the next one (C5)', () => {
    const h = new ClusterHarness();
    localJob(h, { intervalMs: 0, fullEvery: 4 });
    const first = complete(h, 30);
    const [a, b, c] = calls(first).filter((x) => x.req.kind === 'prepare');
    h.answer(a!, { kind: 'prepared', pages: 1, bytes: 1, done: true }, 31);
    h.answer(c!, { kind: 'prepared', pages: 1, bytes: 1, done: true }, 31);
    // b answers too late: the round aborts at its prepare deadline, the next final round follows.
    const again = h.advance(5000, NODES, isPrepare).at(-1)!;
    expect(calls(again.out).filter((x) => x.req.kind === 'prepare').map((x) => x.req.kind === 'prepare' && x.req.epoch)).toEqual([2n, 2n, 2n]);
    h.answer(b!, { kind: 'prepared', pages: 1, bytes: 1, done: true });
    // At the new cut b is not done (its units were restored, say): committed, but not the end.
    let last = again.out;
    for (const x of calls(again.out)) last = h.answer(x, { kind: 'prepared', pages: 1, bytes: 1, done: x.to !== b!.to });
    for (const x of calls(last)) last = h.answer(x, { kind: 'durable', part: { writer: x.to, epoch: 2n, units: [], pages: 1 } });
    h.step({ kind: 'persisted', what: last.persist[0]! });
    expect(h.core.jobState(LJOB)).toBe('running');
  });

  it('fails, saying its final state is in no epoch, when maxFinalAttempts final rounds do not commit', () => {
    const h = new ClusterHarness({ maxFinalAttempts: 3 });
    localJob(h, { intervalMs: 0, fullEvery: 4 });
    let out = complete(h, 30);
    const starts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const [a] = calls(out).filter((c) => c.req.kind === 'prepare');
      starts.push(h.nowMs);
      h.answer(a!, { kind: 'refused', reason: 'ENOSPC' });
      if (i < 2) out = h.advance(5000, NODES, isPrepare).at(-1)!.out;
    }
    expect(starts).toEqual([30, 30 + 250, 30 + 250 + 500]);
    expect(h.core.jobView(LJOB)).toMatchObject({
      state: 'failed',
      lastError: expect.stringMatching(/^its units finished but the final round did not commit, so its final state is in no epoch \(attempt 1: round 1 aborted in preparing: .*ENOSPC; attempt 2: .*; attempt 3: round 3 aborted in preparing: .*ENOSPC\)$/),
    });
    expect(prepares(h.advance(5000, NODES))).toEqual([]);
  });
});

describe('ClusterSupervisor: the job table (C9) and a failed write', () => {
  it('hands the driver a job\'s row in every step that changed it, once, and none otherwise', () => {
    const h = new ClusterHarness();
    const sub = submitLocal(h);
    expect(h.rows.map((r) => [r.t, r.row.state])).toEqual([[10, 'starting']]);
    expect(h.rows[0]!.row).toEqual({
      jobId: LJOB, units: LUNITS, state: 'starting', placement: { s0: 'c1n1', s1: 'c1n2', s2: 'c1n3' }, local: SPEC, committed: [], highestEpoch: 0n,
      needsFull: true, startGens: { c1n1: G(1), c1n2: G(2), c1n3: G(3) }, gridGen: 0, lastError: '', recoveries: 0,
    });
    for (const c of calls(sub.out)) h.answer(c, { kind: 'ok' }, 20);
    h.advance(119, NODES); // heartbeats: nothing changes
    expect(h.rows.map((r) => [r.t, r.row.state])).toEqual([[10, 'starting'], [20, 'running']]);
    // A round: the block of epochs it opens (1..64) is reserved in the row of the step that sends its PREPAREs (C3 across a restart).
    const round = h.advance(1000, NODES, isPrepare).at(-1)!;
    expect(h.rows.at(-1)).toMatchObject({ t: round.t, row: { highestEpoch: 64n, committed: [] } });
    finishRound(h, round.out);
    // Its commit changes the row only where the lifecycle does (the first full epoch): the committed epochs are the store's.
    expect(h.rows.at(-1)).toMatchObject({ t: h.nowMs, row: { highestEpoch: 64n, committed: [], needsFull: false } });
    const written = h.rows.length;
    finishRound(h, h.advance(1000, NODES, isPrepare).at(-1)!.out);
    expect(h.rows.length, 'a round inside the reserved block writes no row').toBe(written);
    const perStep = new Map<string, number>();
    for (const r of h.rows) perStep.set(`${r.step}#${r.row.jobId}`, (perStep.get(`${r.step}#${r.row.jobId}`) ?? 0) + 1);
    expect([...perStep.values()].every((n) => n === 1)).toBe(true);
  });

  it('a failed row write means the step\'s calls were never sent: they fail as such; the row is written again later, and no start leaves before it', () => {
    const h = new ClusterHarness();
    const sub = submitLocal(h);
    const failed = h.step({ kind: 'persistFailed', what: h.rows[0]!.persist, reason: 'ENOSPC: no space left on device' }, 12);
    // The starts failed (not sent): the restart goes round again, in place — stop every node first.
    expect(calls(failed).map((c) => [c.to, c.req.kind])).toEqual(NODES.map((n) => [n, 'stopJob']));
    expect(h.rows).toHaveLength(1);
    let last: ClusterStep | null = null;
    for (const c of calls(failed)) last = h.answer(c, { kind: 'ok' }, 13);
    expect(calls(last!)).toEqual([]);
    // The row's retry, a heartbeat interval after the failure; the starts right after it.
    const retry = h.advance(100, NODES, (l) => calls(l.out).some((c) => c.req.kind === 'startJob'));
    expect(h.rows.slice(1).map((r) => [r.t, r.row.state, r.row.startGens])).toEqual([
      [62, 'recovering', { c1n1: G(1), c1n2: G(2), c1n3: G(3) }],
      [63, 'recovering', { c1n1: G(7), c1n2: G(8), c1n3: G(9) }],
    ]);
    const starts = calls(retry.at(-1)!.out);
    expect(starts.map((c) => [retry.at(-1)!.t, c.to, c.req.kind])).toEqual(NODES.map((n) => [63, n, 'startJob']));
    for (const c of starts) last = h.answer(c, { kind: 'ok' }, 64);
    expect(localAnswers(last!)).toEqual([{ reqId: sub.reqId, answer: { kind: 'ok' } }]);
    expect(h.rows.at(-1)!.row.state).toBe('running');
  });
});
