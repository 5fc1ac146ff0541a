import { describe, expect, it } from 'vitest';
import { calls, ClusterHarness, G, LJOB, localAnswers, LUNITS, NODES, SPEC, submitLocal } from './harness.js';

// Exact-output tests of what a hostile or broken peer can no longer do to the
// cluster supervisor core (issue 8's hostile-input findings): evict a live
// node with an implausible incarnation, or leave a job whose start its agent
// refused for good looking alive.

describe('ClusterSupervisor: registrations that cannot evict a live node', () => {
  it('refuses an incarnation past 2^32 or more than 1,000 above the registered one; the node stays alive and its own beats count', () => {
    const h = new ClusterHarness();
    h.step({ kind: 'tick' }, 0);
    h.registerNode('c1n1', 5n, 4, 1);
    const refusals = [2n ** 64n - 1n, 2n ** 32n + 1n, 1_006n].map((inc) => h.step({ kind: 'nodeRegistered', reqId: 77, nodeId: 'c1n1', incarnation: inc, capacityUnits: 4 }, 2).reply);
    expect(refusals).toEqual([
      [{ to: 'c1n1', kind: 'registered', reqId: 77, answer: { ok: false, reason: 'bad incarnation 18446744073709551615 of node c1n1: expected 0 to 2^32' } }],
      [{ to: 'c1n1', kind: 'registered', reqId: 77, answer: { ok: false, reason: 'bad incarnation 4294967297 of node c1n1: expected 0 to 2^32' } }],
      [{ to: 'c1n1', kind: 'registered', reqId: 77, answer: { ok: false, reason: 'implausible incarnation 1006 of node c1n1: the one registered is 5, and a restart moves it up by 1 (at most 1000 at once)' } }],
    ]);
    expect(h.core.nodeIncarnation('c1n1')).toBe(5n);
    expect(h.core.knowsNode('c1n1', 5n)).toBe(true);
    // A real restart (5 -> 6, or a few more after restarts that never registered) still takes over.
    expect(h.registerNode('c1n1', 1_005n, 4, 3).reply).toEqual([{ to: 'c1n1', kind: 'registered', reqId: expect.any(Number), answer: { ok: true } }]);
    expect(h.core.nodeIncarnation('c1n1')).toBe(1_005n);
  });
});

describe('ClusterSupervisor: a start its agent refuses as invalid', () => {
  it('fails the job at once (no eight rounds of restarts), answers the submit invalid-argument, and takes a corrected submit', () => {
    const h = new ClusterHarness();
    const sub = submitLocal(h);
    const [a, b] = calls(sub.out);
    h.answer(a!, { kind: 'ok' }, 15);
    const refused = h.answer(b!, { kind: 'refused', reason: 'units[0].command (unit s1): command "/nope" does not exist', code: 'invalid-argument' }, 16);
    expect(localAnswers(refused)).toEqual([{
      reqId: sub.reqId,
      answer: { kind: 'refused', reason: 'the start on c1n2 was refused: units[0].command (unit s1): command "/nope" does not exist', code: 'invalid-argument' },
    }]);
    expect(h.core.jobState(LJOB)).toBe('failed');
    // The units that did start are stopped; nothing is started again.
    expect(calls(refused).map((c) => [c.to, c.req.kind])).toEqual(NODES.map((n) => [n, 'stopJob']));
    // A resubmit is a new start, not ALREADY_EXISTS: the nodes the failed record ran on are stopped first (one that
    // missed the failure's stop may still run its units: C1), then every node starts.
    const again = h.local({ kind: 'submitJob', jobId: LJOB, units: LUNITS, ...SPEC }, 30);
    expect(h.core.jobState(LJOB)).toBe('starting');
    const stops = calls(again.out);
    expect(stops.map((c) => [c.to, c.req.kind])).toEqual(NODES.map((n) => [n, 'stopJob']));
    let last = again.out;
    for (const c of stops) last = h.answer(c, { kind: 'ok' }, 31);
    expect(calls(last).map((c) => c.req.kind)).toEqual(['startJob', 'startJob', 'startJob']);
  });
});

describe('ClusterSupervisor: the restart policy on a unit failure', () => {
  /** The local job running, then c1n2 reports its units failed (the gen of its start: G(2)). */
  function unitFails(policy?: { onUnitFailure: 'restore' | 'fail'; maxRestarts: number }) {
    const h = new ClusterHarness();
    h.step({ kind: 'tick' }, 0);
    h.register(NODES, 0);
    const sub = h.local({ kind: 'submitJob', jobId: LJOB, units: LUNITS, ...SPEC, ...(policy ? { restartPolicy: policy } : {}) }, 10);
    for (const c of calls(sub.out)) h.answer(c, { kind: 'ok' }, 20);
    expect(h.core.jobState(LJOB)).toBe('running');
    return h;
  }
  const failOn = (h: ClusterHarness, gen: number, t: number) => {
    h.reports.set('c1n2', [{ jobId: LJOB, state: 'failed', gen }]);
    return h.heartbeat('c1n2', {}, t);
  };

  it('fail: the job fails at once, its units are stopped everywhere and the reason names the policy', () => {
    const h = unitFails({ onUnitFailure: 'fail', maxRestarts: 5 });
    const out = failOn(h, G(2), 30);
    expect(h.core.jobState(LJOB)).toBe('failed');
    expect(calls(out).map((c) => [c.to, c.req.kind])).toEqual(NODES.map((n) => [n, 'stopJob']));
    expect(h.core.jobView(LJOB)!.lastError).toBe('a unit of job solo failed on c1n2; its restart policy is to fail');
  });

  it('restore (the default): restarts from the last epoch up to maxRestarts times, then fails; the count is in the job\'s row', () => {
    const h = unitFails({ onUnitFailure: 'restore', maxRestarts: 1 });
    let pending = calls(failOn(h, G(2), 30));
    expect(h.core.jobState(LJOB)).toBe('recovering');
    expect(h.rows.at(-1)!.row).toMatchObject({ restartPolicy: { onUnitFailure: 'restore', maxRestarts: 1 }, unitRestarts: 1 });
    // The restart goes stop -> restore (from the last epoch: none yet, so anew); its calls all answer ok.
    for (let t = 31; h.core.jobState(LJOB) !== 'running' && t < 2_000; t += 10) {
      const next = pending.flatMap((c) => calls(h.answer(c, { kind: 'ok' }, t)));
      pending = next.length > 0 ? next : h.advance(t + 10, NODES).flatMap((l) => calls(l.out));
    }
    expect(h.core.jobState(LJOB)).toBe('running');
    expect(h.core.jobView(LJOB)!.recoveries).toBe(1);
    const gen = h.core.jobView(LJOB)!.startGens.get('c1n2')!;
    failOn(h, gen, h.nowMs + 1);
    expect(h.core.jobState(LJOB)).toBe('failed');
    expect(h.core.jobView(LJOB)!.lastError).toBe('a unit of job solo failed on c1n2; gave up after 1 restarts (restartPolicy.maxRestarts)');
  });

  it('a node\'s units fenced or stopped are no unit failure: they restart whatever the policy says', () => {
    const h = unitFails({ onUnitFailure: 'fail', maxRestarts: 0 });
    h.reports.set('c1n2', [{ jobId: LJOB, state: 'fenced', gen: G(2) }]);
    h.heartbeat('c1n2', {}, 30);
    expect(h.core.jobState(LJOB)).toBe('recovering');
  });
});
