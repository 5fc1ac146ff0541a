import { describe, expect, it } from 'vitest';

// Six defects the exact-output tests of the new cores found (a frozen failed
// job, a restart that never thawed, a driver re-entered by a synchronous port,
// heartbeats lowering the grant bound of a call in flight at both levels, a
// deadline left in the past). Each of these failed before its fix.
import { NodeParticipant } from '../../src/node/core/participant.js';
import { SerialDriver } from '../../src/runtime/serial-driver.js';
import { ClusterHarness, NODES, JOB, UNITS, calls, callsOf } from '../cluster/supervisor/harness.js';
import { GridHarness, CLUSTERS, UNITS as GUNITS, calls as gcalls } from '../grid/supervisor/harness.js';

const PCONF = { nodeId: 'c1n1', incarnation: 1n, capacityUnits: 4, heartbeatIntervalMs: 50, freezeTimeoutMs: 100, maxJobs: 16, defaultFullEvery: 8 };
const call = (reqId: number, req: any) => ({ kind: 'call' as const, call: { reqId, from: 'c1', incarnation: 1n, req } });

describe('defects the core tests found, fixed', () => {
  // DEFECT 1 — P5/P1: a unit that exits non-zero during a round leaves a failed job frozen (checkInvariants throws).
  it('D1 participant: a failed exit while frozen thaws (P1) and leaves no frozen failed job (P5)', () => {
    const p = new NodeParticipant(PCONF);
    p.step({ kind: 'tick' }, 0);
    p.step(call(1, { kind: 'startJob', jobId: 'bank', units: ['u0'], sources: [], leaseMs: 500, gen: 1 }), 10);
    p.step({ kind: 'spawned', jobId: 'bank', reqId: 1, corrupt: null }, 12);
    p.step(call(2, { kind: 'prepare', jobId: 'bank', epoch: 1n, parentEpoch: null, full: true }), 20);
    const out = p.step({ kind: 'unitsExited', jobId: 'bank', ok: false, reason: 'u0 exited 1' }, 21);
    expect(() => p.checkInvariants()).not.toThrow();            // throws "P5: failed job bank holds a snapshot or is frozen"
    expect(out.send).toContainEqual({ to: 'units', unit: { op: 'thaw', jobId: 'bank' } });
  });

  // DEFECT 2 — P1 on the units port: restarting a job that completed while frozen never thaws it nor answers its PREPARE.
  it('D2 participant: a start over a job that completed mid-freeze thaws it first', () => {
    const p = new NodeParticipant(PCONF);
    p.step({ kind: 'tick' }, 0);
    p.step(call(1, { kind: 'startJob', jobId: 'bank', units: ['u0'], sources: [], leaseMs: 500, gen: 1 }), 10);
    p.step({ kind: 'spawned', jobId: 'bank', reqId: 1, corrupt: null }, 12);
    p.step(call(2, { kind: 'prepare', jobId: 'bank', epoch: 1n, parentEpoch: null, full: true }), 20); // freeze
    p.step({ kind: 'unitsExited', jobId: 'bank', ok: true, reason: 'all exited 0' }, 21);
    const out = p.step(call(3, { kind: 'startJob', jobId: 'bank', units: ['u0'], sources: [], leaseMs: 500, gen: 2 }), 22);
    expect(out.send).toContainEqual({ to: 'units', unit: { op: 'thaw', jobId: 'bank' } }); // only a spawn is sent
  });

  // DEFECT 3 — SerialDriver: an input queued by a synchronous port during deliver() is stepped at once (nested pump),
  // between the step's sends and its replies, and before the step's persisted inputs.
  it('D3 driver: an input queued from inside send() waits until the step\'s replies and persisted inputs', () => {
    const log: string[] = [];
    const script: Record<string, { persist?: string[]; send?: string[]; reply?: string[] }> = { a: { send: ['s1', 's2'], reply: ['r1'] }, b: { persist: ['p1'], send: ['s-b'] }, echo: { send: ['s-echo'] } };
    const core = { step: (i: string) => { log.push(`step ${i}`); const s = script[i] ?? {}; return { persist: s.persist ?? [], send: s.send ?? [], reply: s.reply ?? [] }; }, nextDeadline: () => null, checkInvariants: () => undefined };
    const pend: Array<() => void> = [];
    const d: SerialDriver<string, string, string, string> = new SerialDriver(core, {
      clock: { nowMs: () => 0, wallMs: () => 0 }, timers: { setTimer: () => 0, clearTimer: () => undefined },
      persist: (p, done) => { log.push(`persist ${p}`); pend.push(() => done(null)); },
      send: (s) => { log.push(`send ${s}`); if (s === 's1' || s === 's-b') d.input('echo'); },
      reply: (r) => void log.push(`reply ${r}`),
      persistFailed: (p) => `failed ${p}`, persisted: (p) => `persisted(${p})`, tick: () => 'tick',
    });
    d.input('a');
    d.input('b');
    pend.shift()!();
    expect(log).toEqual([
      'step a', 'send s1', 'send s2', 'reply r1', 'step echo', 'send s-echo',
      'step b', 'persist p1', 'send s-b', 'step persisted(p1)', 'step echo', 'send s-echo',
    ]);
    // actual: step a | send s1 | step echo | send s-echo | send s2 | reply r1 | step b | persist p1 | send s-b | step echo | send s-echo | step persisted(p1)
  });

  // DEFECT 4 — C1: a heartbeat answered while a start is in flight lowers lastGrantMs (assignment, not max),
  // so a restore moves the node's units before the start's lease (start send + callTimeoutMs + agentLeaseMs) + margin.
  it('D4 cluster: no restore before the start\'s grant (send + callTimeoutMs) + agentLeaseMs + margin', () => {
    const h = new ClusterHarness();
    h.step({ kind: 'tick' }, 0);
    h.register(NODES, 0);
    const sub = h.grid({ kind: 'submitJob', jobId: JOB, units: UNITS, gen: 1, leaseMs: 0 }, 10);  // start to c1n1 leaves at 10: lastGrant 210
    const starts = calls(sub.out);
    h.answer(starts[1]!, { kind: 'ok' }, 20);
    h.answer(starts[2]!, { kind: 'ok' }, 20);
    h.advance(50, NODES);                                  // c1n1's heartbeat at 50 is answered with the job leased: lastGrant := 50
    const failing = h.advance(5000, ['c1n2', 'c1n3'], (l) => calls(l.out).some((c) => c.req.kind === 'stopJob'));  // failed at 512
    for (const c of callsOf(failing).filter((c) => c.req.kind === 'stopJob')) h.answer(c, { kind: 'ok' });
    const restore = h.advance(5000, ['c1n2', 'c1n3'], (l) => calls(l.out).some((c) => c.req.kind === 'startJob'));
    const t = callsOf(restore).find((c) => c.req.kind === 'startJob')!.t;
    expect(t).toBeGreaterThanOrEqual(10 + 200 + 500 + 200);   // actual: 750
  });

  // DEFECT 5 — G1, same pattern at the grid (hidden by the simulator's config: its callTimeoutMs 200 < detection time).
  it('D5 grid: no restore before the submit\'s grant (send + callTimeoutMs) + clusterLeaseMs + agentLeaseMs + margin', () => {
    const h = new GridHarness({ callTimeoutMs: 1000 });
    h.step({ kind: 'tick' }, 0);
    h.register(CLUSTERS, 0);
    const sub = h.step({ kind: 'submit', reqId: 1, jobId: 'bank', units: GUNITS }, 10);  // lastGrant(c1) = 1010
    h.persistAll(sub);
    for (const c of gcalls(sub)) if (c.to !== 'c1') h.answer(c, { kind: 'ok' }, 20);
    for (const c of CLUSTERS) h.heartbeat(c, {}, 50);       // c1's heartbeat answered with the job leased: lastGrant := 50
    let restoreAt: number | undefined;
    for (let t = 60; t <= 4000 && restoreAt === undefined; t += 10) {
      if (t % 50 === 0) { h.heartbeat('c2', {}, t); h.heartbeat('c3', {}, t); } else h.step({ kind: 'tick' }, t);
      for (const l of h.log.filter((l) => l.t === t)) { h.persistAll(l.out); if (gcalls(l.out).some((c) => c.req.kind === 'restoreJob')) restoreAt ??= t; }
    }
    expect(restoreAt).toBeGreaterThanOrEqual(1010 + 1000 + 500 + 300);  // actual: 1850
  });

  // DEFECT 6 — the grid's nextDeadline() stays in the past while a submit is unanswered past checkpointIntervalMs
  // (onTime skips startRound while job.submit is set): the driver re-arms a 0 ms timer forever (an endless loop at one instant in the simulator).
  it('D6 grid: after a tick, the next deadline is in the future', () => {
    const h = new GridHarness();
    h.step({ kind: 'tick' }, 0);
    h.register(CLUSTERS, 0);
    const sub = h.step({ kind: 'submit', reqId: 1, jobId: 'bank', units: GUNITS }, 10);
    for (const c of gcalls(sub)) if (c.to !== 'c3') h.answer(c, { kind: 'ok' }, 20);   // c3's answer is slow
    h.step({ kind: 'tick' }, 160);
    expect(h.core.nextDeadline()).toBeGreaterThan(160);      // actual: 160
  });
});
