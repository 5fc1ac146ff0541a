import { describe, expect, it } from 'vitest';
import { leaseMarginMs } from '../../../src/detector/lease.js';
import {
  agentCall, beatAnswer, calls, callsOf, CLUSTER_CONFIG, ClusterHarness, commitEpoch, G, gridAnswers, JOB, NODES, PLACED, runningJob, UNITS, type Logged,
} from './harness.js';

// Exact-output tests of the cluster supervisor core (src/cluster/core/supervisor.ts),
// driven by feeding inputs and comparing the exact sends, persists and
// replies; invariants C1..C7 are those of its header, and checkInvariants()
// runs after every step (harness.ts). Config values are the simulator's.

const SURVIVORS = ['c1n2', 'c1n3'];
const LEASE_WAIT_MS = CLUSTER_CONFIG.agentLeaseMs + leaseMarginMs(CLUSTER_CONFIG.agentLeaseMs); // 500 + 200

const startCalls = (steps: Logged[]) => callsOf(steps).filter((c) => c.req.kind === 'startJob');

describe('ClusterSupervisor: membership', () => {
  it('registers an agent by RegisterNode (capacity from it) and answers its heartbeats known, with the agent lease', () => {
    const h = new ClusterHarness();
    expect(h.step({ kind: 'tick' }, 0)).toEqual({
      persist: [], reply: [],
      send: [{ to: 'grid', heartbeat: { member: 'c1', incarnation: 1n, seq: 1, sentAtMs: 0, jobs: [], freeUnits: 0 } }],
    });
    // Not registered yet: unknown (the agent then registers).
    expect(beatAnswer(h.heartbeat('c1n1', {}, 2))).toEqual({ known: false, leasedJobs: [], leaseMs: 500 });
    expect(h.step({ kind: 'nodeRegistered', reqId: 7, nodeId: 'c1n1', incarnation: 1n, capacityUnits: 4 }, 4)).toEqual({
      persist: [], send: [], reply: [{ to: 'c1n1', kind: 'registered', reqId: 7, answer: { ok: true } }],
    });
    expect(h.heartbeat('c1n1', {}, 5)).toEqual({
      persist: [], send: [],
      reply: [{ to: 'c1n1', kind: 'beat', seq: 2, answer: { known: true, leasedJobs: [], leaseMs: 500 } }],
    });
    h.registerNode('c1n2', 1n, 3, 6);
    // The heartbeat's own freeUnits count for nothing: capacity is the registration's.
    h.heartbeat('c1n2', { freeUnits: 99 }, 6);
    // The next heartbeat to the grid counts the free room of the alive registered nodes.
    const beat = h.advance(50, []).flatMap((l) => l.out.send);
    expect(beat).toEqual([{ to: 'grid', heartbeat: { member: 'c1', incarnation: 1n, seq: 2, sentAtMs: 50, jobs: [], freeUnits: 7 } }]);
    expect(h.events.filter((e) => e.kind === 'nodeRegistered')).toEqual([
      { kind: 'nodeRegistered', nodeId: 'c1n1', incarnation: 1n }, { kind: 'nodeRegistered', nodeId: 'c1n2', incarnation: 1n },
    ]);
    expect(h.core.nodesView()).toEqual([
      { nodeId: 'c1n1', incarnation: 1n, capacityUnits: 4, placedUnits: 0, verdict: 'alive', phi: expect.any(Number), silenceMs: 45 },
      { nodeId: 'c1n2', incarnation: 1n, capacityUnits: 3, placedUnits: 0, verdict: 'alive', phi: expect.any(Number), silenceMs: 44 },
    ]);
  });

  it('beats to the grid at the interval the grid asked for (its detector expects that one), not at its own', () => {
    const h = new ClusterHarness();
    h.step({ kind: 'tick' }, 0);
    const gridBeats = (steps: Logged[]) => steps.flatMap((l) => l.out.send.filter((s) => s.to === 'grid').map(() => l.t));
    expect(gridBeats(h.advance(100, []))).toEqual([50, 100]);
    h.step({ kind: 'gridHeartbeatAnswer', sentAtMs: 100, answer: { known: true, leasedJobs: [], leaseMs: 1000, intervalMs: 120 } }, 101);
    expect(gridBeats(h.advance(400, []))).toEqual([150, 270, 390]);
  });

  it('fences a registration of an older incarnation than the one known (and its heartbeats: unknown)', () => {
    const h = new ClusterHarness();
    h.step({ kind: 'tick' }, 0);
    h.registerNode('c1n1', 2n, 4, 1);
    expect(h.registerNode('c1n1', 1n, 4, 2).reply).toEqual([
      { to: 'c1n1', kind: 'registered', reqId: expect.any(Number), answer: { ok: false, reason: 'fenced: node c1n1 incarnation 1 is older than 2' } },
    ]);
    expect(h.heartbeat('c1n1', { incarnation: 1n }, 3).reply).toEqual([
      { to: 'c1n1', kind: 'beat', seq: 1, answer: { known: false, leasedJobs: [], leaseMs: 500 } },
    ]);
    // A newer incarnation's heartbeat before it registered: unknown too.
    expect(beatAnswer(h.heartbeat('c1n1', { incarnation: 3n }, 4)).known).toBe(false);
    expect(beatAnswer(h.heartbeat('c1n1', { incarnation: 2n }, 5)).known).toBe(true);
  });

  it('refuses a registration it cannot take: a bad name or capacity', () => {
    const h = new ClusterHarness();
    h.step({ kind: 'tick' }, 0);
    expect(h.step({ kind: 'nodeRegistered', reqId: 1, nodeId: '../x', incarnation: 1n, capacityUnits: 4 }).reply).toEqual([
      { to: '../x', kind: 'registered', reqId: 1, answer: { ok: false, reason: expect.stringMatching(/^bad node/) } },
    ]);
    expect(h.step({ kind: 'nodeRegistered', reqId: 2, nodeId: 'c1n1', incarnation: 1n, capacityUnits: -1 }).reply).toEqual([
      { to: 'c1n1', kind: 'registered', reqId: 2, answer: { ok: false, reason: 'bad capacity -1 of node c1n1: expected an integer >= 0' } },
    ]);
    expect(h.core.nodesView()).toEqual([]);
  });
});

describe('ClusterSupervisor: submit', () => {
  it('holds a grid job no longer than the lease the grid\'s call names (not its own default), from the call\'s arrival (G1)', () => {
    for (const leaseMs of [300, 0]) {
      const h = new ClusterHarness();
      h.gridAnswers = false;
      h.step({ kind: 'tick' }, 0);
      h.register(NODES, 0);
      const { out } = h.grid({ kind: 'submitJob', jobId: JOB, units: UNITS, gen: 1, leaseMs }, 10);
      for (const c of calls(out)) h.answer(c, { kind: 'ok' }, 12);
      // No heartbeat answer from the grid renews it: it is fenced when the lease the call named lapses.
      const steps = h.advance(5_000, NODES, (l) => h.core.jobState(JOB) === 'fenced' && l.t > 0);
      expect(steps.at(-1)!.t).toBe(10 + (leaseMs || CLUSTER_CONFIG.gridLeaseMs));
    }
  });

  it('starts the units on the registered nodes and answers the grid ok once every start is', () => {
    const h = new ClusterHarness();
    h.step({ kind: 'tick' }, 0);
    h.register(NODES, 0);
    const { reqId, out } = h.grid({ kind: 'submitJob', jobId: JOB, units: ['u3', 'u2', 'u1', 'u0'], gen: 1, leaseMs: 0 }, 10);
    expect(out).toEqual({
      persist: [], reply: [],
      send: [
        { to: 'c1n1', call: agentCall(1, { kind: 'startJob', jobId: JOB, units: PLACED.c1n1!, sources: [], leaseMs: 500, gen: G(1) }) },
        { to: 'c1n2', call: agentCall(2, { kind: 'startJob', jobId: JOB, units: PLACED.c1n2!, sources: [], leaseMs: 500, gen: G(2) }) },
        { to: 'c1n3', call: agentCall(3, { kind: 'startJob', jobId: JOB, units: PLACED.c1n3!, sources: [], leaseMs: 500, gen: G(3) }) },
      ],
    });
    expect(h.core.jobState(JOB)).toBe('starting');
    const starts = calls(out);
    expect(h.answer(starts[0]!, { kind: 'ok' }, 20)).toEqual({ persist: [], send: [], reply: [] });
    expect(h.answer(starts[2]!, { kind: 'ok' }, 21)).toEqual({ persist: [], send: [], reply: [] });
    expect(h.answer(starts[1]!, { kind: 'ok' }, 22)).toEqual({ persist: [], send: [], reply: [{ to: 'grid', kind: 'answer', reqId, answer: { kind: 'ok' } }] });
    expect(h.core.jobState(JOB)).toBe('running');
    // Every node of the job now gets the job named in its heartbeat answer (its lease).
    for (const n of NODES) expect(beatAnswer(h.heartbeat(n, {}, 30))).toEqual({ known: true, leasedJobs: [JOB], leaseMs: 500 });
  });

  it('refuses a second submit of a live job and a submit from an older grid incarnation', () => {
    const h = new ClusterHarness();
    runningJob(h);
    const again = h.grid({ kind: 'submitJob', jobId: JOB, units: UNITS, gen: 2, leaseMs: 0 });
    expect(again.out).toEqual({ persist: [], send: [], reply: [{ to: 'grid', kind: 'answer', reqId: again.reqId, answer: { kind: 'refused', reason: 'job bank is already running' } }] });
    h.grid({ kind: 'stopJob', jobId: 'other' }, 30, 3n);
    const old = h.grid({ kind: 'submitJob', jobId: 'other', units: ['x'], gen: 1, leaseMs: 0 }, 31, 2n);
    expect(old.out).toEqual({ persist: [], send: [], reply: [{ to: 'grid', kind: 'answer', reqId: old.reqId, answer: { kind: 'refused', reason: 'fenced: a call from a deposed grid: its incarnation 2 is older than the incarnation 3 this cluster has seen', stale: true } }] });
  });
});

describe('ClusterSupervisor: the grid round (held two-level round)', () => {
  it('prepare → agent PREPAREs → one PREPARED answer to the grid (pages summed, done false) → commit → manifest → committed', () => {
    const h = new ClusterHarness();
    runningJob(h);
    const prep = h.grid({ kind: 'prepare', jobId: JOB, epoch: 1n, parentEpoch: null }, 30);
    expect(prep.out).toEqual({
      persist: [], reply: [],
      send: NODES.map((n, i) => ({ to: n, call: agentCall(4 + i, { kind: 'prepare', jobId: JOB, epoch: 1n, parentEpoch: null, full: true, lastCommitted: null }) })),
    });
    const prepares = calls(prep.out);
    expect(h.answer(prepares[0]!, { kind: 'prepared', pages: 2, bytes: 8192, done: false }, 31)).toEqual({ persist: [], send: [], reply: [] });
    expect(h.answer(prepares[1]!, { kind: 'prepared', pages: 1, bytes: 4096, done: false }, 32)).toEqual({ persist: [], send: [], reply: [] });
    expect(h.answer(prepares[2]!, { kind: 'prepared', pages: 1, bytes: 4096, done: false }, 33)).toEqual({
      persist: [], send: [],
      reply: [{ to: 'grid', kind: 'answer', reqId: prep.reqId, answer: { kind: 'prepared', pages: 4, bytes: 16384, done: false } }],
    });
    // Held: no COMMIT until the grid says so.
    const com = h.grid({ kind: 'commit', jobId: JOB, epoch: 1n }, 40);
    expect(com.out).toEqual({
      persist: [], reply: [],
      send: NODES.map((n, i) => ({ to: n, call: agentCall(7 + i, { kind: 'commit', jobId: JOB, epoch: 1n }) })),
    });
    const commits = calls(com.out);
    const part = (n: string) => ({ writer: n, epoch: 1n, units: PLACED[n]!, pages: PLACED[n]!.length });
    expect(h.answer(commits[0]!, { kind: 'durable', part: part('c1n1') }, 41)).toEqual({ persist: [], send: [], reply: [] });
    expect(h.answer(commits[1]!, { kind: 'durable', part: part('c1n2') }, 42)).toEqual({ persist: [], send: [], reply: [] });
    const manifestStep = h.answer(commits[2]!, { kind: 'durable', part: part('c1n3') }, 43);
    expect(manifestStep).toEqual({
      send: [], reply: [], // no answer to the grid before the manifest is durable
      persist: [{
        kind: 'manifest', jobId: JOB, epoch: 1n, parentEpoch: null, full: true,
        parts: NODES.map(part),
        placement: { u0: 'c1n1', u1: 'c1n2', u2: 'c1n3', u3: 'c1n1' },
      }],
    });
    expect(h.step({ kind: 'persisted', what: manifestStep.persist[0]! }, 44)).toEqual({
      persist: [], send: [], reply: [{ to: 'grid', kind: 'answer', reqId: com.reqId, answer: { kind: 'committed', epoch: 1n } }],
    });
    expect(h.core.jobView(JOB)!.committed).toEqual([1n]);
  });

  it('read-only votes: a grid round whose nodes all staged nothing answers prepared, and the grid\'s commit writes the manifest at once, no COMMIT sent', () => {
    const h = new ClusterHarness();
    runningJob(h);
    commitEpoch(h, 1n, null);
    const prep = h.grid({ kind: 'prepare', jobId: JOB, epoch: 2n, parentEpoch: 1n }, 30);
    const empty = (n: string) => ({ writer: n, epoch: 2n, units: PLACED[n]!, pages: 0 });
    let last = null;
    for (const c of calls(prep.out)) last = h.answer(c, { kind: 'prepared', pages: 0, bytes: 0, done: false, digest: 'e0', readOnly: { part: empty(c.to), digest: 'e0' } }, 31);
    // The grid still hears PREPARED first: the cluster answers its phases as before.
    expect(last).toEqual({ persist: [], send: [], reply: [{ to: 'grid', kind: 'answer', reqId: prep.reqId, answer: { kind: 'prepared', pages: 0, bytes: 0, done: false } }] });
    const com = h.grid({ kind: 'commit', jobId: JOB, epoch: 2n }, 40);
    expect(com.out).toEqual({
      send: [], reply: [],
      persist: [{ kind: 'manifest', jobId: JOB, epoch: 2n, parentEpoch: 1n, full: false, parts: NODES.map(empty), placement: { u0: 'c1n1', u1: 'c1n2', u2: 'c1n3', u3: 'c1n1' } }],
    });
    expect(h.step({ kind: 'persisted', what: com.out.persist[0]! }, 41)).toEqual({
      persist: [], send: [], reply: [{ to: 'grid', kind: 'answer', reqId: com.reqId, answer: { kind: 'committed', epoch: 2n } }],
    });
    expect(h.core.jobView(JOB)!.committed).toEqual([1n, 2n]);
  });

  it('read-only votes: a mixed grid round sends COMMIT only to the nodes that have a part to write; the manifest names every part', () => {
    const h = new ClusterHarness();
    runningJob(h);
    const prep = h.grid({ kind: 'prepare', jobId: JOB, epoch: 1n, parentEpoch: null }, 30);
    const [a, b, c] = calls(prep.out);
    const empty = (n: string) => ({ writer: n, epoch: 1n, units: PLACED[n]!, pages: 0 });
    h.answer(a!, { kind: 'prepared', pages: 0, bytes: 0, done: false, readOnly: { part: empty('c1n1') } }, 31);
    h.answer(b!, { kind: 'prepared', pages: 2, bytes: 8192, done: false }, 32);
    h.answer(c!, { kind: 'prepared', pages: 0, bytes: 0, done: false, readOnly: { part: empty('c1n3') } }, 33);
    const com = h.grid({ kind: 'commit', jobId: JOB, epoch: 1n }, 40);
    expect(com.out).toEqual({ persist: [], reply: [], send: [{ to: 'c1n2', call: agentCall(7, { kind: 'commit', jobId: JOB, epoch: 1n }) }] });
    const written = { writer: 'c1n2', epoch: 1n, units: PLACED['c1n2']!, pages: 2 };
    expect(h.answer(calls(com.out)[0]!, { kind: 'durable', part: written }, 41).persist).toEqual([{
      kind: 'manifest', jobId: JOB, epoch: 1n, parentEpoch: null, full: true, parts: [empty('c1n1'), written, empty('c1n3')],
      placement: { u0: 'c1n1', u1: 'c1n2', u2: 'c1n3', u3: 'c1n1' },
    }]);
  });

  it('the PREPARED answer says done only when every node said done at the cut', () => {
    const h = new ClusterHarness();
    runningJob(h);
    const prep = h.grid({ kind: 'prepare', jobId: JOB, epoch: 1n, parentEpoch: null }, 30);
    const [a, b, c] = calls(prep.out);
    h.answer(a!, { kind: 'prepared', pages: 1, bytes: 1, done: true });
    h.answer(b!, { kind: 'prepared', pages: 1, bytes: 1, done: false });
    expect(gridAnswers(h.answer(c!, { kind: 'prepared', pages: 1, bytes: 1, done: true }))).toEqual([{ reqId: prep.reqId, answer: { kind: 'prepared', pages: 3, bytes: 3, done: false } }]);
    h.grid({ kind: 'abort', jobId: JOB, epoch: 1n });
    const prep2 = h.grid({ kind: 'prepare', jobId: JOB, epoch: 2n, parentEpoch: null }, 40);
    let last = null;
    for (const x of calls(prep2.out)) last = h.answer(x, { kind: 'prepared', pages: 1, bytes: 1, done: true });
    expect(gridAnswers(last!)).toEqual([{ reqId: prep2.reqId, answer: { kind: 'prepared', pages: 3, bytes: 3, done: true } }]);
  });

  it('an incremental epoch names its parent once a full one committed', () => {
    const h = new ClusterHarness();
    runningJob(h);
    commitEpoch(h, 1n, null);
    const prep = h.grid({ kind: 'prepare', jobId: JOB, epoch: 2n, parentEpoch: 1n });
    expect(calls(prep.out).map((c) => c.req)).toEqual(NODES.map(() => ({ kind: 'prepare', jobId: JOB, epoch: 2n, parentEpoch: 1n, full: false, lastCommitted: 1n })));
  });

  it('a manifest that fails to persist aborts the round: ABORT to every node, the grid commit refused', () => {
    const h = new ClusterHarness();
    runningJob(h);
    const prep = h.grid({ kind: 'prepare', jobId: JOB, epoch: 1n, parentEpoch: null }, 30);
    for (const c of calls(prep.out)) h.answer(c, { kind: 'prepared', pages: 1, bytes: 1, done: false });
    const com = h.grid({ kind: 'commit', jobId: JOB, epoch: 1n });
    let last = null;
    for (const c of calls(com.out)) last = h.answer(c, { kind: 'durable', part: { writer: c.to, epoch: 1n, units: [], pages: 1 } });
    const out = h.step({ kind: 'persistFailed', what: last!.persist[0]!, reason: 'ENOSPC' }, 50);
    expect(calls(out).map((c) => [c.to, c.req])).toEqual(NODES.map((n) => [n, { kind: 'abort', jobId: JOB, epoch: 1n }]));
    expect(gridAnswers(out)).toEqual([{ reqId: com.reqId, answer: { kind: 'refused', reason: expect.stringMatching(/^round 1 aborted in writingManifest: .*ENOSPC/) } }]);
    expect(h.core.jobView(JOB)!.committed).toEqual([]);
  });

  it('a node that refuses to prepare aborts the round and the grid prepare is refused', () => {
    const h = new ClusterHarness();
    runningJob(h);
    const prep = h.grid({ kind: 'prepare', jobId: JOB, epoch: 1n, parentEpoch: null }, 30);
    const out = h.answer(calls(prep.out)[1]!, { kind: 'refused', reason: 'freeze of epoch 1 took over 100 ms' }, 31);
    expect(calls(out).map((c) => [c.to, c.req.kind])).toEqual(NODES.map((n) => [n, 'abort']));
    expect(gridAnswers(out)).toEqual([{ reqId: prep.reqId, answer: { kind: 'refused', reason: expect.stringMatching(/^round 1 aborted in preparing: .*c1n2.*freeze of epoch 1 took over 100 ms/) } }]);
  });

  it('refuses a commit with no prepared round, and a prepare of an epoch not above the highest (C3)', () => {
    const h = new ClusterHarness();
    runningJob(h);
    const com = h.grid({ kind: 'commit', jobId: JOB, epoch: 1n }, 30);
    expect(com.out).toEqual({ persist: [], send: [], reply: [{ to: 'grid', kind: 'answer', reqId: com.reqId, answer: { kind: 'refused', reason: 'no prepared round for epoch 1 of job bank' } }] });
    commitEpoch(h, 3n, null);
    for (const epoch of [3n, 2n]) {
      const p = h.grid({ kind: 'prepare', jobId: JOB, epoch, parentEpoch: null });
      expect(p.out).toEqual({ persist: [], send: [], reply: [{ to: 'grid', kind: 'answer', reqId: p.reqId, answer: { kind: 'refused', reason: `stale grid epoch ${epoch}: this cluster is at 3` } }] });
    }
  });
});

describe('ClusterSupervisor: a lost node (C1)', () => {
  /** The job runs with epoch 1 committed; c1n1 heartbeats until 300, then falls silent. */
  function lostNode(): ClusterHarness {
    const h = new ClusterHarness();
    runningJob(h);
    h.advance(100, NODES);
    commitEpoch(h, 1n, null);
    h.advance(300, NODES);
    return h;
  }

  it('declares the silent node failed, stops the survivors, and restores only at last grant + agentLeaseMs + margin, on a spare', () => {
    const h = lostNode();
    const lastBeat = h.lastBeatOf('c1n1');
    expect(lastBeat).toBe(300);
    const failing = h.advance(5000, SURVIVORS, (l) => calls(l.out).length > 0);
    const failedAt = failing.at(-1)!;
    // The detector's verdict, < 1 s after the last heartbeat (scaleDetectorConfig(50): ~461 ms of silence).
    expect(failedAt.t).toBe(762);
    expect(h.core.failuresDetected).toBe(1);
    expect(calls(failedAt.out).map((c) => [c.to, c.req])).toEqual(SURVIVORS.map((n) => [n, { kind: 'stopJob', jobId: JOB, gen: expect.any(Number) }]));
    expect(h.core.jobState(JOB)).toBe('recovering');
    for (const c of calls(failedAt.out)) h.answer(c, { kind: 'ok' }, 770);
    // The lost node's lease ran from its last heartbeat answered with the job: nothing is restored before it surely lapsed.
    const safeAt = lastBeat + LEASE_WAIT_MS;
    expect(safeAt).toBe(1000);
    const waiting = h.advance(safeAt - 1, SURVIVORS);
    expect(startCalls(waiting)).toEqual([]);
    const restoring = h.advance(safeAt, SURVIVORS);
    const starts = startCalls(restoring);
    expect(starts.map((c) => c.t)).toEqual([safeAt, safeAt]);
    expect(starts.map((c) => [c.to, c.req])).toEqual([
      // c1n1's units move together to the alive node with the most room (ties by id): c1n2.
      ['c1n2', { kind: 'startJob', jobId: JOB, units: ['u0', 'u1', 'u3'], sources: [{ store: 'c1', epoch: 1n, units: ['u0', 'u1', 'u3'] }], leaseMs: 500, gen: G(starts[0]!.reqId) }],
      ['c1n3', { kind: 'startJob', jobId: JOB, units: ['u2'], sources: [{ store: 'c1', epoch: 1n, units: ['u2'] }], leaseMs: 500, gen: G(starts[1]!.reqId) }],
    ]);
    for (const c of starts) h.answer(c, { kind: 'ok' }, safeAt + 5);
    expect(h.core.jobState(JOB)).toBe('running');
    expect(Object.fromEntries(h.core.jobView(JOB)!.placement)).toEqual({ u0: 'c1n2', u1: 'c1n2', u2: 'c1n3', u3: 'c1n2' });
    // After a restart the next epoch is full: the moved units' pages are in no incremental chain here.
    const prep = h.grid({ kind: 'prepare', jobId: JOB, epoch: 2n, parentEpoch: 1n }, safeAt + 10);
    expect(calls(prep.out).map((c) => [c.to, c.req])).toEqual(SURVIVORS.map((n) => [n, { kind: 'prepare', jobId: JOB, epoch: 2n, parentEpoch: null, full: true, lastCommitted: 1n }]));
  });

  it('a round the silent node does not answer aborts at its prepare deadline; back after its failure, the node is leased nothing', () => {
    const h = lostNode();
    const prep = h.grid({ kind: 'prepare', jobId: JOB, epoch: 2n, parentEpoch: 1n }, 300);
    for (const c of calls(prep.out).filter((c) => c.to !== 'c1n1')) h.answer(c, { kind: 'prepared', pages: 1, bytes: 1, done: false }, 301);
    // c1n1 never answers; the prepare deadline (300 ms) aborts the round first.
    const steps = h.advance(5000, SURVIVORS, (l) => calls(l.out).some((c) => c.req.kind === 'stopJob'));
    const aborts = callsOf(steps).filter((c) => c.req.kind === 'abort');
    expect(aborts.map((c) => [c.t, c.to])).toEqual(NODES.map((n) => [600, n]));
    expect(steps.flatMap((l) => gridAnswers(l.out))).toEqual([{ reqId: prep.reqId, answer: { kind: 'refused', reason: expect.stringMatching(/^round 2 aborted in preparing/) } }]);
    // Back from the dead with the same incarnation after its failure: unknown, until it registers again
    // (a fresh watch); then it is told nothing is leased to it.
    expect(beatAnswer(h.heartbeat('c1n1', {}, 800))).toEqual({ known: false, leasedJobs: [], leaseMs: 500 });
    h.registerNode('c1n1', 1n, 4, 801);
    expect(beatAnswer(h.heartbeat('c1n1', {}, 802))).toEqual({ known: true, leasedJobs: [], leaseMs: 500 });
    expect(h.core.nodesView().find((n) => n.nodeId === 'c1n1')?.verdict).toBe('alive');
  });

  it('waits for every survivor to stop before restoring, even past the lease wait', () => {
    const h = lostNode();
    const failing = h.advance(5000, SURVIVORS, (l) => calls(l.out).length > 0);
    const [s2, s3] = calls(failing.at(-1)!.out);
    h.answer(s2!, { kind: 'ok' }, 800);
    expect(startCalls(h.advance(1100, SURVIVORS))).toEqual([]);
    const out = h.answer(s3!, { kind: 'ok' }, 1100);
    expect(calls(out).map((c) => [c.to, c.req.kind])).toEqual([['c1n2', 'startJob'], ['c1n3', 'startJob']]);
  });

  it('a survivor that dies during the restore is one more lost node: re-plan, never fail while room remains', () => {
    const h = new ClusterHarness();
    h.step({ kind: 'tick' }, 0);
    h.register([...NODES, 'c1n4'], 0);
    const sub = h.grid({ kind: 'submitJob', jobId: JOB, units: UNITS, gen: 1, leaseMs: 0 }, 10);
    for (const c of calls(sub.out)) h.answer(c, { kind: 'ok' }, 20);
    const placed = Object.fromEntries(h.core.jobView(JOB)!.placement);
    expect(placed).toEqual({ u0: 'c1n1', u1: 'c1n2', u2: 'c1n3', u3: 'c1n4' });
    h.advance(300, [...NODES, 'c1n4']);
    const alive = ['c1n2', 'c1n3', 'c1n4'];
    const failing = h.advance(5000, alive, (l) => calls(l.out).length > 0);
    for (const c of calls(failing.at(-1)!.out)) h.answer(c, { kind: 'ok' });
    const restoring = h.advance(5000, alive, (l) => calls(l.out).length > 0);
    const starts = startCalls(restoring);
    // c1n1's unit goes to the spare with the most room (ties by id): c1n2, which turns out unreachable.
    expect(starts.map((c) => [c.t, c.to, c.req.kind === 'startJob' && c.req.units])).toEqual([
      [1000, 'c1n2', ['u0', 'u1']], [1000, 'c1n3', ['u2']], [1000, 'c1n4', ['u3']],
    ]);
    const target = starts[0]!;
    const out = h.step({ kind: 'agentUnreachable', node: target.to, reqId: target.reqId, reason: 'deadline exceeded' }, 1001);
    expect(h.core.jobState(JOB)).toBe('recovering');
    expect(calls(out).map((c) => [c.to, c.req.kind])).toEqual([['c1n3', 'stopJob'], ['c1n4', 'stopJob']]);
    for (const c of calls(out)) h.answer(c, { kind: 'ok' }, 1002);
    // C1 for the unreachable target too: it may have received the start up to its deadline, so
    // its units run elsewhere only after 1000 + callTimeoutMs + agentLeaseMs + margin.
    const safeAt = 1000 + CLUSTER_CONFIG.callTimeoutMs + LEASE_WAIT_MS;
    expect(startCalls(h.advance(safeAt - 1, alive))).toEqual([]);
    const again = startCalls(h.advance(safeAt, alive));
    expect(again.map((c) => [c.t, c.to, c.req.kind === 'startJob' && c.req.units])).toEqual([
      [safeAt, 'c1n3', ['u0', 'u1', 'u2']], [safeAt, 'c1n4', ['u3']],
    ]);
  });
});

describe('ClusterSupervisor: restarts in place', () => {
  it('an agent that restarted (new incarnation) restarts the job in place from the last committed epoch', () => {
    const h = new ClusterHarness();
    runningJob(h);
    commitEpoch(h, 1n, null);
    expect(beatAnswer(h.heartbeat('c1n2', { incarnation: 2n }, 99)).known).toBe(false); // registers first
    const out = h.registerNode('c1n2', 2n, 4, 100);
    // Every node of the job stops (the restarted one too: it may hold a half-started copy); none is lost.
    expect(calls(out).map((c) => [c.to, c.req])).toEqual(NODES.map((n) => [n, { kind: 'stopJob', jobId: JOB, gen: expect.any(Number) }]));
    let restore = null;
    for (const c of calls(out)) restore = h.answer(c, { kind: 'ok' }, 101);
    // Nothing lost: no lease to wait for; the same placement, from epoch 1.
    expect(calls(restore!).map((c) => [c.to, c.req.kind === 'startJob' ? c.req.sources : null])).toEqual(
      NODES.map((n) => [n, [{ store: 'c1', epoch: 1n, units: PLACED[n]! }]]));
  });

  it('units reported fenced restart the job (a report counts only with the gen of the node\'s last start)', () => {
    const h = new ClusterHarness();
    runningJob(h);
    h.reports.set('c1n3', [{ jobId: JOB, state: 'fenced', gen: 3 }]);
    expect(calls(h.heartbeat('c1n3', {}, 50))).toEqual([]); // an old start's report (another incarnation's numbering): ignored
    h.reports.set('c1n3', [{ jobId: JOB, state: 'fenced', gen: G(3) }]);
    expect(calls(h.heartbeat('c1n3', {}, 60)).map((c) => [c.to, c.req.kind])).toEqual(NODES.map((n) => [n, 'stopJob']));
    expect(h.core.jobState(JOB)).toBe('recovering');
  });
});

describe('ClusterSupervisor: walk-back on a damaged epoch', () => {
  it('a restore source of this store that fails verification walks every node back to the previous committed epoch', () => {
    const h = new ClusterHarness();
    runningJob(h);
    h.advance(100, NODES);
    commitEpoch(h, 1n, null);
    commitEpoch(h, 2n, 1n);
    h.advance(300, NODES);
    const failing = h.advance(5000, SURVIVORS, (l) => calls(l.out).length > 0);
    for (const c of calls(failing.at(-1)!.out)) h.answer(c, { kind: 'ok' });
    const restoring = h.advance(5000, SURVIVORS, (l) => calls(l.out).length > 0);
    const starts = startCalls(restoring);
    expect(starts.map((c) => c.req.kind === 'startJob' && c.req.sources.map((s) => s.epoch))).toEqual([[2n], [2n]]);
    // c1n2 finds epoch 2 damaged.
    const out = h.answer(starts[0]!, { kind: 'corrupt', store: 'c1', epoch: 2n, reason: 'crc mismatch' }, h.nowMs + 1);
    expect(calls(out).map((c) => [c.to, c.req.kind])).toEqual(SURVIVORS.map((n) => [n, 'stopJob']));
    let again = null;
    for (const c of calls(out)) again = h.answer(c, { kind: 'ok' });
    expect(calls(again!).map((c) => [c.to, c.req.kind === 'startJob' && c.req.sources])).toEqual([
      ['c1n2', [{ store: 'c1', epoch: 1n, units: ['u0', 'u1', 'u3'] }]],
      ['c1n3', [{ store: 'c1', epoch: 1n, units: ['u2'] }]],
    ]);
    // The late answer to the first restore attempt changes nothing.
    expect(h.answer(starts[1]!, { kind: 'ok' })).toEqual({ persist: [], send: [], reply: [] });
    for (const c of calls(again!)) h.answer(c, { kind: 'ok' });
    expect(h.core.jobView(JOB)).toMatchObject({ state: 'running', committed: [1n] });
  });

  it('past the oldest intact epoch the units start anew (no source)', () => {
    const h = new ClusterHarness();
    runningJob(h);
    commitEpoch(h, 1n, null);
    const out = h.registerNode('c1n2', 2n, 4, 100);
    let restore = null;
    for (const c of calls(out)) restore = h.answer(c, { kind: 'ok' }, 101);
    const first = calls(restore!)[0]!;
    const back = h.answer(first, { kind: 'corrupt', store: 'c1', epoch: 1n, reason: 'torn write' }, 102);
    let fresh = null;
    for (const c of calls(back)) fresh = h.answer(c, { kind: 'ok' }, 103);
    expect(calls(fresh!).map((c) => c.req.kind === 'startJob' && c.req.sources)).toEqual([[], [], []]);
  });

  it('a damaged source in another cluster\'s store is the grid\'s to walk back: the restore is answered corrupt', () => {
    const h = new ClusterHarness();
    h.step({ kind: 'tick' }, 0);
    h.register(NODES, 0);
    const r = h.grid({ kind: 'restoreJob', jobId: JOB, units: UNITS, epoch: null, adopt: [{ fromCluster: 'c2', epoch: 4n, units: ['u3'] }], gen: 5, leaseMs: 0 }, 10);
    const starts = calls(r.out);
    expect(starts.map((c) => c.req.kind === 'startJob' && c.req.sources)).toEqual([[{ store: 'c2', epoch: 4n, units: ['u3'] }], [], []]);
    const out = h.answer(starts[0]!, { kind: 'corrupt', store: 'c2', epoch: 4n, reason: 'bad page' }, 20);
    expect(gridAnswers(out)).toEqual([{ reqId: r.reqId, answer: { kind: 'corrupt', store: 'c2', epoch: 4n, reason: 'bad page' } }]);
    // Not failed: a failed share is a lost cluster to the grid. The share waits, its units stopped, for the grid's next restore.
    expect(h.core.jobView(JOB)).toMatchObject({ state: 'recovering', lastError: expect.stringMatching(/c2 epoch 4 failed: bad page; the grid walks back its line/) });
    expect(calls(out).map((c) => [c.to, c.req.kind])).toEqual(NODES.map((n) => [n, 'stopJob']));
    for (const c of calls(out)) h.answer(c, { kind: 'ok' }, 21);
    // The grid's next line: the share restores from it.
    const again = h.grid({ kind: 'restoreJob', jobId: JOB, units: UNITS, epoch: null, adopt: [{ fromCluster: 'c2', epoch: 3n, units: ['u3'] }], gen: 6, leaseMs: 0 }, 30);
    let restore = again.out;
    for (const c of calls(again.out)) restore = h.answer(c, { kind: 'ok' }, 31);
    expect(calls(restore).map((c) => c.req.kind === 'startJob' && c.req.sources)).toEqual([[{ store: 'c2', epoch: 3n, units: ['u3'] }], [], []]);
    for (const c of calls(restore)) h.answer(c, { kind: 'ok' }, 32);
    expect(h.core.jobState(JOB)).toBe('running');
  });

  it('units a grid restore adopted are read from the other cluster\'s store again by a node loss, until a full epoch here holds them', () => {
    const h = new ClusterHarness();
    h.step({ kind: 'tick' }, 0);
    h.register(NODES, 0);
    const r = h.grid({ kind: 'restoreJob', jobId: JOB, units: UNITS, epoch: null, adopt: [{ fromCluster: 'c2', epoch: 3n, units: ['u3'] }], gen: 5, leaseMs: 0 }, 10);
    for (const c of calls(r.out)) h.answer(c, { kind: 'ok' }, 11);
    expect(h.core.jobState(JOB)).toBe('running');
    const holderOf = (u: string) => h.core.jobView(JOB)!.placement.get(u)!;
    const loseHolderOfU3 = () => {
      const lost = holderOf('u3');
      const alive = NODES.filter((n) => n !== lost);
      const stopping = h.advance(h.nowMs + 10_000, alive, (l) => calls(l.out).some((c) => c.req.kind === 'stopJob'));
      for (const c of callsOf(stopping).filter((x) => x.req.kind === 'stopJob')) h.answer(c, { kind: 'ok' });
      const steps = h.advance(h.nowMs + 10_000, alive, (l) => calls(l.out).some((c) => c.req.kind === 'startJob'));
      const starts = callsOf(steps).filter((c) => c.req.kind === 'startJob');
      expect(starts.length).toBeGreaterThan(0);
      for (const c of starts) h.answer(c, { kind: 'ok' });
      h.registerNode(lost, 2n, 4); // back, empty, for the next loss
      h.advance(h.nowMs + 200, NODES);
      return starts.flatMap((c) => (c.req.kind === 'startJob' ? c.req.sources : []));
    };
    // No epoch here yet: u3's pages are only in c2's store (the others start anew, as the grid's restore said).
    expect(loseHolderOfU3()).toEqual([{ store: 'c2', epoch: 3n, units: ['u3'] }]);
    expect(h.core.jobState(JOB)).toBe('running');
    // A full epoch here holds every unit: the next loss reads only this store.
    commitEpoch(h, 7n, null);
    const sources = loseHolderOfU3();
    expect(sources.every((x) => x.store === 'c1' && x.epoch === 7n)).toBe(true);
    expect(sources.flatMap((x) => x.units).sort()).toEqual([...UNITS].sort());
  });

  it('a damaged own epoch the grid chose is the grid\'s to walk back too: no local walk-back under a grid restore', () => {
    const h = new ClusterHarness();
    runningJob(h);
    commitEpoch(h, 1n, null);
    commitEpoch(h, 2n, 1n);
    const r = h.grid({ kind: 'restoreJob', jobId: JOB, units: UNITS, epoch: 2n, adopt: [], gen: 7, leaseMs: 0 }, 100);
    let restore = r.out;
    for (const c of calls(r.out)) restore = h.answer(c, { kind: 'ok' }, 101);
    const starts = calls(restore);
    expect(starts.every((c) => c.req.kind === 'startJob' && c.req.sources.every((x) => x.epoch === 2n))).toBe(true);
    const out = h.answer(starts[0]!, { kind: 'corrupt', store: 'c1', epoch: 2n, reason: 'crc32c mismatch' }, 102);
    expect(gridAnswers(out)).toEqual([{ reqId: r.reqId, answer: { kind: 'corrupt', store: 'c1', epoch: 2n, reason: 'crc32c mismatch' } }]);
    // No start from epoch 1 of its own choosing: the grid's line decides every cluster's epoch.
    expect(calls(out).every((c) => c.req.kind === 'stopJob')).toBe(true);
    expect(h.core.jobState(JOB)).toBe('recovering');
  });
});

describe('ClusterSupervisor: the grid lease (C6) and completion (C5)', () => {
  it('fences a grid-managed job exactly when the grid lease lapses: stop on every node, state fenced', () => {
    const h = new ClusterHarness();
    h.gridAnswers = false;
    runningJob(h); // submitted at 10: the grid lease runs to 10 + gridLeaseMs
    const until = 10 + CLUSTER_CONFIG.gridLeaseMs;
    const before = h.advance(until - 1, NODES);
    expect(callsOf(before)).toEqual([]);
    expect(h.core.jobState(JOB)).toBe('running');
    const at = h.advance(until, NODES);
    const fence = at.find((l) => calls(l.out).length > 0)!;
    expect(fence.t).toBe(until);
    expect(calls(fence.out).map((c) => [c.to, c.req])).toEqual(NODES.map((n) => [n, { kind: 'stopJob', jobId: JOB, gen: expect.any(Number) }]));
    expect(h.core.jobState(JOB)).toBe('fenced');
    expect(beatAnswer(h.heartbeat('c1n1', {}, until + 1)).leasedJobs).toEqual([]);
  });

  it('F1: a leader elected later fences the older one: its calls are refused as stale, its heartbeat answers renew nothing', () => {
    const h = new ClusterHarness();
    h.gridAnswers = false;
    runningJob(h);
    // Term 5 (the leader elected through etcd) is heard first; a call of term 4 from any incarnation is then stale.
    expect(h.grid({ kind: 'stopJob', jobId: 'other' }, 30, 1n, 5n).out.reply[0]).toMatchObject({ answer: { kind: 'ok' } });
    const old = h.grid({ kind: 'abort', jobId: JOB, epoch: 9n }, 31, 9n, 4n);
    expect(old.out.reply).toEqual([{ to: 'grid', kind: 'answer', reqId: old.reqId, answer: {
      kind: 'refused', stale: true, reason: 'fenced: a call from a deposed grid: its leader term 4 (incarnation 9) is older than the leader term 5 (incarnation 1) this cluster has seen',
    } }]);
    expect(h.core.staleGridCalls).toBe(1);
    expect(h.events).toContainEqual(expect.objectContaining({ kind: 'staleGridCall', request: 'abort', jobId: JOB }));
    expect(h.core.gridFence()).toEqual({ term: 5n, incarnation: 1n });
    // A deposed leader's heartbeat answer names the job, but the lease lapses as if it had not come.
    h.advance(700, NODES);
    h.step({ kind: 'gridHeartbeatAnswer', sentAtMs: 500, answer: { known: true, leasedJobs: [JOB], leaseMs: 1000, fence: { term: 4n, incarnation: 9n } } }, 700);
    h.advance(1500, NODES);
    expect(h.core.jobState(JOB)).toBe('fenced');
  });

  it('F1: a newer leader\'s heartbeat answer raises the fence the cluster holds', () => {
    const h = new ClusterHarness();
    h.gridAnswers = false;
    runningJob(h);
    h.step({ kind: 'gridHeartbeatAnswer', sentAtMs: 40, answer: { known: true, leasedJobs: [JOB], leaseMs: 1000, fence: { term: 7n, incarnation: 2n } } }, 50);
    expect(h.core.gridFence()).toEqual({ term: 7n, incarnation: 2n });
    expect(h.grid({ kind: 'stopJob', jobId: 'other' }, 60, 3n, 6n).out.reply[0]).toMatchObject({ answer: { kind: 'refused', stale: true } });
  });

  it('a grid heartbeat answer renews the lease from its send', () => {
    const h = new ClusterHarness();
    h.gridAnswers = false;
    runningJob(h);
    h.advance(700, NODES);
    h.step({ kind: 'gridHeartbeatAnswer', sentAtMs: 500, answer: { known: true, leasedJobs: [JOB], leaseMs: 1000 } }, 700);
    h.advance(1499, NODES);
    expect(h.core.jobState(JOB)).toBe('running');
    h.advance(1500, NODES);
    expect(h.core.jobState(JOB)).toBe('fenced');
  });

  it('reports its share completed to the grid only once every node reported completion and no round runs', () => {
    const h = new ClusterHarness();
    runningJob(h);
    const shareState = (steps: Logged[]) => steps.flatMap((l) => l.out.send).flatMap((s) => ('heartbeat' in s ? s.heartbeat.jobs : [])).at(-1);
    h.reports.set('c1n1', [{ jobId: JOB, state: 'completed', gen: G(1) }]);
    h.reports.set('c1n2', [{ jobId: JOB, state: 'completed', gen: G(2) }]);
    expect(shareState(h.advance(100, NODES))).toEqual({ jobId: JOB, state: 'running', gen: 1 });
    h.reports.set('c1n3', [{ jobId: JOB, state: 'completed', gen: G(3) }]);
    const prep = h.grid({ kind: 'prepare', jobId: JOB, epoch: 1n, parentEpoch: null }, 100);
    expect(shareState(h.advance(150, NODES))).toEqual({ jobId: JOB, state: 'running', gen: 1 }); // a round runs
    let last = null;
    for (const c of calls(prep.out)) last = h.answer(c, { kind: 'prepared', pages: 1, bytes: 1, done: true }, 160);
    expect(gridAnswers(last!)).toEqual([{ reqId: prep.reqId, answer: { kind: 'prepared', pages: 3, bytes: 3, done: true } }]);
    const com = h.grid({ kind: 'commit', jobId: JOB, epoch: 1n }, 170);
    for (const c of calls(com.out)) last = h.answer(c, { kind: 'durable', part: { writer: c.to, epoch: 1n, units: [], pages: 1 } }, 171);
    h.step({ kind: 'persisted', what: last!.persist[0]! }, 172);
    expect(shareState(h.advance(200, NODES))).toEqual({ jobId: JOB, state: 'completed', gen: 1 });
    // The grid ends the job: completed here, and the nodes are told to stop.
    const stop = h.grid({ kind: 'stopJob', jobId: JOB }, 210);
    expect(calls(stop.out).map((c) => [c.to, c.req.kind])).toEqual(NODES.map((n) => [n, 'stopJob']));
    expect(h.core.jobState(JOB)).toBe('completed');
  });

  it('shows its share completed (status, Watch) once every node reported completion: one event, the job still running for the grid', () => {
    const h = new ClusterHarness();
    runningJob(h);
    const shown = () => h.events.filter((e) => e.kind === 'shareCompleted');
    h.reports.set('c1n1', [{ jobId: JOB, state: 'completed', gen: G(1) }]);
    h.reports.set('c1n2', [{ jobId: JOB, state: 'completed', gen: G(2) }]);
    h.advance(100, NODES);
    expect(h.core.jobView(JOB)!.shownState).toBe('running');
    h.reports.set('c1n3', [{ jobId: JOB, state: 'completed', gen: G(3) }]);
    h.advance(200, NODES);
    expect(shown()).toEqual([{ kind: 'shareCompleted', jobId: JOB, reason: 'every unit completed; the grid\'s final round records the end state' }]);
    expect(h.core.jobState(JOB)).toBe('running');
    expect(h.core.jobView(JOB)!.shownState).toBe('completed');
    // A round (the grid's final one) does not change what is shown, nor does the grid's stop add an event.
    commitEpoch(h, 1n, null);
    h.grid({ kind: 'stopJob', jobId: JOB }, h.nowMs);
    expect(h.core.jobView(JOB)!.shownState).toBe('completed');
    expect(shown()).toHaveLength(1);
  });

  it('shows a completed share running again when a node restarts its units (no event: its jobState says so)', () => {
    const h = new ClusterHarness();
    runningJob(h);
    for (const [n, i] of NODES.map((n, i) => [n, i] as const)) h.reports.set(n, [{ jobId: JOB, state: 'completed', gen: G(i + 1) }]);
    h.advance(100, NODES);
    expect(h.core.jobView(JOB)!.shownState).toBe('completed');
    h.reports.set('c1n2', [{ jobId: JOB, state: 'fenced', gen: G(2) }]);
    h.heartbeat('c1n2', {}, 101);
    expect(h.core.jobState(JOB)).toBe('recovering');
    expect(h.core.jobView(JOB)!.shownState).toBe('recovering');
    expect(h.events.filter((e) => e.kind === 'shareCompleted')).toHaveLength(1);
  });
});
