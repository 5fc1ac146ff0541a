import { describe, expect, it } from 'vitest';
import type { JobRow } from '../../../src/cluster/core/supervisor-types.js';
import { leaseMarginMs } from '../../../src/detector/lease.js';
import { beatAnswer, calls, callsOf, CLUSTER_CONFIG, ClusterHarness, finishRound, G, gridAnswers, LJOB, localJob, NODES, SPEC, type Logged } from './harness.js';

// A restarted cluster coordinator takes its local jobs back from the job
// table (supervisor-resume.ts): without a restart when every node is back
// and still runs the row's start (C10), with a restart in place when a node
// says otherwise, and moving the units of a node that does not come back
// only after any lease the previous incarnation granted has lapsed (C1).
// Gens of the new incarnation are above the old one's (C8).

const isPrepare = (l: Logged) => calls(l.out).some((c) => c.req.kind === 'prepare');
const startsOf = (steps: Logged[]) => callsOf(steps).filter((c) => c.req.kind === 'startJob');

/**
 * The first incarnation runs the local job through two rounds; it dies after
 * epoch 2's manifest is durable. Returns the last row it saved (epochs up
 * to 64 reserved) and the store's epochs.
 */
function firstIncarnation(): { row: JobRow; committed: Map<string, bigint[]> } {
  const h = new ClusterHarness();
  localJob(h);
  finishRound(h, h.advance(1000, NODES, isPrepare).at(-1)!.out);
  const second = h.advance(1000, NODES, isPrepare).at(-1)!;
  const row = h.rows.at(-1)!.row;
  // Epochs are reserved 64 at a time: round 2 needed no new row. The committed epochs are the store's to list.
  expect(row).toMatchObject({ state: 'running', committed: [], highestEpoch: 64n, startGens: { c1n1: G(1), c1n2: G(2), c1n3: G(3) } });
  finishRound(h, second.out);
  return { row, committed: new Map([[LJOB, [1n, 2n]]]) };
}

function resumed(config: Partial<typeof CLUSTER_CONFIG> = {}): ClusterHarness {
  const { row, committed } = firstIncarnation();
  const h = new ClusterHarness({ incarnation: 2n, ...config }, { rows: [row], committed });
  h.step({ kind: 'tick' }, 0);
  return h;
}

/** A node of the old incarnation registers again and beats, reporting the job as `state` under `gen`. */
function comesBack(h: ClusterHarness, node: string, t: number, state: 'running' | 'fenced' | 'completed' | null, gen: number) {
  h.reports.set(node, state === null ? [] : [{ jobId: LJOB, state, gen }]);
  // (An agent that lost the job restarted: a new incarnation, which this coordinator has never seen either.)
  h.registerNode(node, state === null ? 2n : 1n, 4, t);
  return h.heartbeat(node, {}, t);
}

describe('ClusterSupervisor: resume from the job table', () => {
  it('takes a live local job back recovering, its epochs from the store, and runs it on without a restart once every node shows its start running (C10)', () => {
    const h = resumed();
    expect(h.core.jobView(LJOB)).toMatchObject({ state: 'recovering', committed: [1n, 2n], lastEpoch: 2n, local: SPEC, recoveries: 0 });
    expect(h.events.slice(0, 3)).toEqual([
      { kind: 'jobState', jobId: LJOB, from: null, to: 'recovering', reason: 'resumed after a coordinator restart' },
      { kind: 'jobPlaced', jobId: LJOB, placement: { s0: 'c1n1', s1: 'c1n2', s2: 'c1n3' } },
      { kind: 'recoveryStarted', jobId: LJOB, nodeId: null, reason: 'resumed after a coordinator restart' },
    ]);
    // A node not registered again is unknown; registered, its answers renew the job's lease.
    expect(beatAnswer(h.heartbeat('c1n1', {}, 5)).known).toBe(false);
    expect(beatAnswer(comesBack(h, 'c1n1', 10, 'running', G(1)))).toEqual({ known: true, leasedJobs: [LJOB], leaseMs: 500 });
    expect(beatAnswer(comesBack(h, 'c1n2', 11, 'completed', G(2))).leasedJobs).toEqual([LJOB]);
    expect(h.core.jobState(LJOB)).toBe('recovering');
    comesBack(h, 'c1n3', 12, 'running', G(3));
    expect(h.core.jobState(LJOB)).toBe('running');
    // Nothing was recovered: every unit ran on (a recovery is counted when it restarts units).
    expect(h.core.jobView(LJOB)!.recoveries).toBe(0);
    expect(callsOf(h.log)).toEqual([]); // no stop, no start
    expect(h.events.slice(-2)).toEqual([
      { kind: 'jobState', jobId: LJOB, from: 'recovering', to: 'running', reason: 'every node still runs its units' },
      { kind: 'recovered', jobId: LJOB, ms: 12, ok: true },
    ]);
    // Its rounds go on above every epoch the previous incarnation may have used (the row's reserved ceiling, 64), on the store's newest (2).
    const next = h.advance(1000, NODES, isPrepare).at(-1)!;
    expect(next.t).toBe(12 + SPEC.intervalMs);
    expect(calls(next.out).map((c) => c.req)).toEqual(NODES.map(() => ({ kind: 'prepare', jobId: LJOB, epoch: 65n, parentEpoch: 2n, full: false, lastCommitted: 2n })));
  });

  it('a node that does not register again within resumeWaitMs is lost: its units move only after the old incarnation\'s lease (C1), with gens above the old ones (C8)', () => {
    const h = resumed({ resumeWaitMs: 300 });
    comesBack(h, 'c1n2', 10, 'running', G(2));
    comesBack(h, 'c1n3', 10, 'running', G(3));
    const alive = ['c1n2', 'c1n3'];
    expect(callsOf(h.advance(299, alive))).toEqual([]);
    const at = h.advance(300, alive).find((l) => calls(l.out).length > 0)!;
    expect(at.t).toBe(300);
    expect(calls(at.out).map((c) => [c.to, c.req])).toEqual(alive.map((n, i) => [n, { kind: 'stopJob', jobId: LJOB, gen: G(1 + i, 2) }]));
    for (const c of calls(at.out)) h.answer(c, { kind: 'ok' }, 305);
    // The old incarnation may have granted c1n1 a lease until its death, or sent a start then: count from the first step + callTimeoutMs.
    const safeAt = 0 + CLUSTER_CONFIG.callTimeoutMs + CLUSTER_CONFIG.agentLeaseMs + leaseMarginMs(CLUSTER_CONFIG.agentLeaseMs);
    expect(safeAt).toBe(900);
    expect(startsOf(h.advance(safeAt - 1, alive))).toEqual([]);
    const starts = startsOf(h.advance(safeAt, alive));
    expect(starts.map((c) => [c.t, c.to, c.req])).toEqual([
      [900, 'c1n2', { kind: 'startJob', jobId: LJOB, units: ['s0', 's1'], sources: [{ store: 'c1', epoch: 2n, units: ['s0', 's1'] }], leaseMs: 500, gen: G(starts[0]!.reqId, 2) }],
      [900, 'c1n3', { kind: 'startJob', jobId: LJOB, units: ['s2'], sources: [{ store: 'c1', epoch: 2n, units: ['s2'] }], leaseMs: 500, gen: G(starts[1]!.reqId, 2) }],
    ]);
    expect(G(1, 2)).toBeGreaterThan(G(2 ** 31));
    for (const c of starts) h.answer(c, { kind: 'ok' }, 905);
    expect(h.core.jobView(LJOB)).toMatchObject({
      state: 'running', recoveries: 1, lastError: 'restarted: resumed after a coordinator restart: node c1n1 did not register again within 300 ms after the coordinator restarted',
    });
    expect(h.events.at(-1)).toEqual({ kind: 'recovered', jobId: LJOB, ms: 905, ok: true });
  });

  it('a node of a resumed job failing before the others are back: the restart loses it and every node not registered again (C1, C2)', () => {
    const h = resumed({ resumeWaitMs: 3000 });
    comesBack(h, 'c1n2', 10, 'running', G(2));
    comesBack(h, 'c1n3', 10, 'running', G(3));
    h.advance(100, ['c1n2', 'c1n3']);
    // c1n3 falls silent; c1n1 never comes back. c1n3's failure restarts the job before the resume waited its time out.
    const failing = h.advance(5000, ['c1n2'], (l) => calls(l.out).length > 0).at(-1)!;
    expect(failing.t).toBeLessThan(3000);
    expect(calls(failing.out).map((c) => [c.to, c.req.kind])).toEqual([['c1n2', 'stopJob']]);
    h.answer(calls(failing.out)[0]!, { kind: 'ok' });
    // Both leases must have lapsed: c1n3's from its last heartbeat answer, c1n1's from the old incarnation (0 + 200 + 500 + 200).
    expect(startsOf(h.advance(899, ['c1n2']))).toEqual([]);
    const starts = startsOf(h.advance(900, ['c1n2']));
    expect(starts.map((c) => [c.t, c.to, c.req.kind === 'startJob' && c.req.units])).toEqual([[900, 'c1n2', ['s0', 's1', 's2']]]);
  });

  it('a node whose units were fenced meanwhile, or whose agent restarted and lost the job, gives a restart in place', () => {
    for (const [node, state, why] of [
      ['c1n2', 'fenced', 'the units on c1n2 were fenced'],
      ['c1n3', null, 'the agent on c1n3 no longer has the job'],
    ] as const) {
      const h = resumed();
      for (const [i, n] of NODES.entries()) comesBack(h, n, 10, n === node ? state : 'running', G(i + 1));
      const stops = callsOf(h.log.slice(-1));
      expect(stops.map((c) => [c.to, c.req.kind])).toEqual(NODES.map((n) => [n, 'stopJob']));
      let last = h.log.at(-1)!.out;
      for (const c of stops) last = h.answer(c, { kind: 'ok' }, 11);
      // Nothing lost: no lease to wait for; the same placement, from the newest epoch.
      expect(calls(last).map((c) => [c.to, c.req.kind === 'startJob' && c.req.sources])).toEqual(
        NODES.map((n, i) => [n, [{ store: 'c1', epoch: 2n, units: [`s${i}`] }]]));
      expect(h.events.find((e) => e.kind === 'jobState' && e.to === 'recovering' && e.from === 'recovering')).toBeUndefined();
      for (const c of calls(last)) h.answer(c, { kind: 'ok' }, 12);
      expect(h.core.jobView(LJOB)).toMatchObject({ state: 'running', recoveries: 1, lastError: `restarted: resumed after a coordinator restart: ${why}` });
      expect(h.rows.at(-1)!.row).toMatchObject({ state: 'running', lastError: `restarted: resumed after a coordinator restart: ${why}` });
      // One recovery, from the resume to its end.
      expect(h.events.filter((e) => e.kind === 'recoveryStarted' || e.kind === 'recovered').map((e) => e.kind)).toEqual(['recoveryStarted', 'recovered']);
    }
  });

  it('leaves grid-managed rows to the grid but knows their epochs (C3) and placement (C1); ended local rows come back ended', () => {
    const grid: JobRow = {
      jobId: 'bank', units: ['u0'], state: 'running', placement: { u0: 'c1n1' }, local: null, committed: [4n], highestEpoch: 6n, needsFull: false,
      startGens: { c1n1: G(3) }, gridGen: 2, lastError: '', recoveries: 0,
    };
    const done: JobRow = { ...grid, jobId: 'old', state: 'completed', local: { intervalMs: 0, fullEvery: 1 }, highestEpoch: 3n, committed: [3n] };
    const h = new ClusterHarness({ incarnation: 2n }, { rows: [grid, done], committed: new Map() });
    h.step({ kind: 'tick' }, 0);
    h.register(NODES, 0);
    expect(h.core.jobIds()).toEqual(['old']);
    expect(h.core.jobView('old')).toMatchObject({ state: 'completed', committed: [3n], lastEpoch: 3n });
    // The grid restores its job here: where the previous incarnation ran it (its copy there is stopped first).
    const r = h.grid({ kind: 'restoreJob', jobId: 'bank', units: ['u0'], epoch: null, adopt: [], gen: 3, leaseMs: 0 }, 10);
    expect(calls(r.out).map((c) => [c.to, c.req.kind])).toEqual([['c1n1', 'stopJob']]);
    const start = h.answer(calls(r.out)[0]!, { kind: 'ok' }, 11);
    expect(calls(start).map((c) => [c.to, c.req.kind === 'startJob' && c.req.units])).toEqual([['c1n1', ['u0']]]);
    h.answer(calls(start)[0]!, { kind: 'ok' }, 11);
    // A PREPARE of an epoch this cluster already used is stale.
    const stale = h.grid({ kind: 'prepare', jobId: 'bank', epoch: 6n, parentEpoch: null }, 12);
    expect(gridAnswers(stale.out)).toEqual([{ reqId: stale.reqId, answer: { kind: 'refused', reason: 'stale grid epoch 6: this cluster is at 6' } }]);
  });

  it('a grid job\'s units on a node that has not registered since the restart move only after the previous incarnation\'s leases (C1)', () => {
    const grid: JobRow = {
      jobId: 'bank', units: ['u0', 'u1'], state: 'running', placement: { u0: 'c1n1', u1: 'c1n9' }, local: null, committed: [], highestEpoch: 0n, needsFull: true,
      startGens: { c1n1: G(1), c1n9: G(2) }, gridGen: 2, lastError: '', recoveries: 0,
    };
    const h = new ClusterHarness({ incarnation: 2n }, { rows: [grid], committed: new Map() });
    h.step({ kind: 'tick' }, 0);
    h.register(NODES, 0);
    const r = h.grid({ kind: 'restoreJob', jobId: 'bank', units: ['u0', 'u1'], epoch: null, adopt: [], gen: 3, leaseMs: 0 }, 10);
    h.answer(calls(r.out)[0]!, { kind: 'ok' }, 11); // c1n1's stop
    expect(startsOf(h.advance(899, NODES))).toEqual([]);
    const starts = startsOf(h.advance(900, NODES));
    // u1 placed anew (the most room, ties by id): c1n1 too.
    expect(starts.map((c) => [c.t, c.to, c.req.kind === 'startJob' && c.req.units])).toEqual([[900, 'c1n1', ['u0', 'u1']]]);
  });
});
