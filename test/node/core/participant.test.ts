import { describe, expect, it } from 'vitest';
import {
  NodeParticipant, type ParticipantConfig, type ParticipantInput, type ParticipantReply, type ParticipantSend, type ParticipantStep, type UnitOp,
} from '../../../src/node/core/participant.js';
import type { AgentAnswer, AgentRequest, HeartbeatAnswer } from '../../../src/protocol/messages.js';

// Exact-output tests of the node agent's participant core: feed inputs,
// compare the exact persist / send / reply lists. Invariant numbers are those
// of src/node/core/participant.ts (P1..P6); checkInvariants() runs after
// every step. Config values are the simulator's (src/sim/run.ts: SIM).

const CONFIG: ParticipantConfig = {
  nodeId: 'c1n1', incarnation: 1n, capacityUnits: 4, heartbeatIntervalMs: 50, freezeTimeoutMs: 100, maxJobs: 16,
};
const JOB = 'bank';
const LEASE_MS = 500;
const NONE: ParticipantStep = { persist: [], send: [], reply: [] };

function make(over: Partial<ParticipantConfig> = {}) {
  const p = new NodeParticipant({ ...CONFIG, ...over });
  const step = (input: ParticipantInput, nowMs: number): ParticipantStep => {
    const out = p.step(input, nowMs);
    p.checkInvariants();
    return out;
  };
  return { p, step };
}

let nextReq = 100;
function call(req: AgentRequest, reqId = nextReq++, incarnation = 1n): ParticipantInput {
  return { kind: 'call', call: { reqId, from: 'c1', incarnation, req } };
}
const startJob = (reqId: number, over: Partial<Extract<AgentRequest, { kind: 'startJob' }>> = {}, inc = 1n) =>
  call({ kind: 'startJob', jobId: JOB, units: ['u3', 'u0'], sources: [], leaseMs: LEASE_MS, gen: 7, ...over }, reqId, inc);
const prepare = (reqId: number, epoch: bigint, inc = 1n) =>
  call({ kind: 'prepare', jobId: JOB, epoch, parentEpoch: epoch > 1n ? epoch - 1n : null, full: epoch === 1n }, reqId, inc);
const commit = (reqId: number, epoch: bigint) => call({ kind: 'commit', jobId: JOB, epoch }, reqId);
const abort = (reqId: number, epoch: bigint) => call({ kind: 'abort', jobId: JOB, epoch }, reqId);
// A stop names a gen above every start sent before it.
const stop = (reqId: number, inc = 1n) => call({ kind: 'stopJob', jobId: JOB, gen: 1_000_000 }, reqId, inc);
const snapshotTaken = (epoch: bigint, pages = 2): ParticipantInput => ({ kind: 'snapshotTaken', jobId: JOB, epoch, pages, bytes: pages * 4096 });
const tick: ParticipantInput = { kind: 'tick' };
const beatAnswer = (sentAtMs: number, answer: Partial<HeartbeatAnswer> = {}): ParticipantInput =>
  ({ kind: 'heartbeatAnswer', sentAtMs, answer: { known: true, leasedJobs: [JOB], leaseMs: LEASE_MS, ...answer } });

const unit = (u: UnitOp): ParticipantSend => ({ to: 'units', unit: u });
const reply = (reqId: number, answer: AgentAnswer): ParticipantReply => ({ to: 'c1', reqId, answer });
const unitSends = (s: ParticipantStep) => s.send.filter((x) => x.to === 'units');
const beats = (s: ParticipantStep) => s.send.flatMap((x) => (x.to === 'cluster' ? [x.heartbeat] : []));

/** A participant whose job runs since t=10 (lease until 510); its first heartbeat went at 0, the next is due at 50. */
function running(over: Partial<ParticipantConfig> = {}) {
  const h = make(over);
  h.step(tick, 0);
  h.step(startJob(1), 10);
  h.step({ kind: 'spawned', jobId: JOB, reqId: 1, corrupt: null }, 12);
  return h;
}

describe('NodeParticipant: start and heartbeats', () => {
  it('sends the first heartbeat at once, then one every heartbeatIntervalMs, each with the next seq', () => {
    const { step } = make();
    expect(step(tick, 0)).toEqual({
      persist: [], reply: [],
      send: [{ to: 'cluster', heartbeat: { member: 'c1n1', incarnation: 1n, seq: 1, sentAtMs: 0, jobs: [], freeUnits: 4 } }],
    });
    expect(step(tick, 49)).toEqual(NONE);
    expect(beats(step(tick, 50))).toEqual([{ member: 'c1n1', incarnation: 1n, seq: 2, sentAtMs: 50, jobs: [], freeUnits: 4 }]);
    expect(step(tick, 99)).toEqual(NONE);
    expect(beats(step(tick, 130))).toEqual([{ member: 'c1n1', incarnation: 1n, seq: 3, sentAtMs: 130, jobs: [], freeUnits: 4 }]);
  });

  it('startJob spawns the sorted units and answers ok only once they spawned', () => {
    const { p, step } = make();
    step(tick, 0);
    expect(step(startJob(1), 10)).toEqual({
      persist: [], reply: [],
      send: [unit({ op: 'spawn', jobId: JOB, units: ['u0', 'u3'], sources: [], reqId: 1 })],
    });
    expect(p.jobState(JOB)).toBe('starting');
    expect(p.mayRun(JOB, 10)).toBe(false);
    // A spawn result for another request changes nothing.
    expect(step({ kind: 'spawned', jobId: JOB, reqId: 99, corrupt: null }, 11)).toEqual(NONE);
    expect(step({ kind: 'spawned', jobId: JOB, reqId: 1, corrupt: null }, 12)).toEqual({ persist: [], send: [], reply: [reply(1, { kind: 'ok' })] });
    expect(p.jobState(JOB)).toBe('running');
    expect(p.mayRun(JOB, 12)).toBe(true);
  });

  it('heartbeats carry each job with the gen of its start (a starting job is left out) and the free units', () => {
    const { step } = make();
    step(tick, 0);
    step(startJob(1, { gen: 42 }), 10);
    expect(beats(step(tick, 50))).toEqual([{ member: 'c1n1', incarnation: 1n, seq: 2, sentAtMs: 50, jobs: [], freeUnits: 2 }]);
    step({ kind: 'spawned', jobId: JOB, reqId: 1, corrupt: null }, 60);
    expect(beats(step(tick, 100))).toEqual([{ member: 'c1n1', incarnation: 1n, seq: 3, sentAtMs: 100, jobs: [{ jobId: JOB, state: 'running', gen: 42 }], freeUnits: 2 }]);
    step({ kind: 'unitsExited', jobId: JOB, ok: true, reason: 'all units exited 0' }, 120);
    expect(beats(step(tick, 150))).toEqual([{ member: 'c1n1', incarnation: 1n, seq: 4, sentAtMs: 150, jobs: [{ jobId: JOB, state: 'completed', gen: 42 }], freeUnits: 4 }]);
  });

  it('a heartbeat answer saying the node is unknown sends the next heartbeat in the same step', () => {
    const { step } = make();
    step(tick, 0);
    expect(beats(step({ kind: 'heartbeatAnswer', sentAtMs: 0, answer: { known: false, leasedJobs: [], leaseMs: LEASE_MS } }, 20)))
      .toEqual([{ member: 'c1n1', incarnation: 1n, seq: 2, sentAtMs: 20, jobs: [], freeUnits: 4 }]);
    expect(step(tick, 69)).toEqual(NONE);
  });

  it('a restore whose source is damaged answers corrupt, kills the units and fails the job', () => {
    const { p, step } = make();
    step(tick, 0);
    step(startJob(1, { sources: [{ store: 'c1', epoch: 3n, units: ['u0', 'u3'] }] }), 10);
    const corrupt = { store: 'c1', epoch: 3n, reason: 'crc mismatch in u0' };
    expect(step({ kind: 'spawned', jobId: JOB, reqId: 1, corrupt }, 12)).toEqual({
      persist: [],
      send: [unit({ op: 'kill', jobId: JOB })],
      reply: [reply(1, { kind: 'corrupt', ...corrupt })],
    });
    expect(p.jobState(JOB)).toBe('failed');
  });

  it('a stop while starting refuses the start and answers the stop ok', () => {
    const { p, step } = make();
    step(tick, 0);
    step(startJob(1), 10);
    expect(step(stop(2), 11)).toEqual({
      persist: [],
      send: [unit({ op: 'kill', jobId: JOB })],
      reply: [reply(1, { kind: 'refused', reason: 'job bank stopped while starting' }), reply(2, { kind: 'ok' })],
    });
    expect(p.jobState(JOB)).toBe('stopped');
    // The late spawn result changes nothing.
    expect(step({ kind: 'spawned', jobId: JOB, reqId: 1, corrupt: null }, 12)).toEqual(NONE);
  });

  it('P6: refuses a start past maxJobs', () => {
    const { step } = make({ maxJobs: 1 });
    step(tick, 0);
    step(startJob(1), 10);
    expect(step(call({ kind: 'startJob', jobId: 'other', units: ['x'], sources: [], leaseMs: LEASE_MS, gen: 1 }, 2), 11))
      .toEqual({ persist: [], send: [], reply: [reply(2, { kind: 'refused', reason: 'at most 1 jobs per agent' })] });
  });

  it('refuses time going back', () => {
    const { step } = make();
    step(tick, 10);
    expect(() => step(tick, 9)).toThrow(/time went back/);
  });
});

describe('NodeParticipant: the checkpoint round', () => {
  it('prepare freezes and snapshots; snapshotTaken thaws and answers prepared (done false for a running job)', () => {
    const { p, step } = running();
    expect(step(prepare(5, 1n), 20)).toEqual({
      persist: [], reply: [],
      send: [unit({ op: 'freeze', jobId: JOB }), unit({ op: 'snapshot', jobId: JOB, epoch: 1n, full: true, parentEpoch: null })],
    });
    expect(p.mayRun(JOB, 20)).toBe(false); // frozen
    expect(step(snapshotTaken(1n, 2), 25)).toEqual({
      persist: [],
      send: [unit({ op: 'thaw', jobId: JOB })],
      reply: [reply(5, { kind: 'prepared', pages: 2, bytes: 8192, done: false })],
    });
    expect(p.mayRun(JOB, 25)).toBe(true);
  });

  it('commit persists writePart and answers durable in the same step (the driver sends it only after the persist)', () => {
    const { step } = running();
    step(prepare(5, 1n), 20);
    step(snapshotTaken(1n, 2), 25);
    expect(step(commit(6, 1n), 30)).toEqual({
      persist: [{ kind: 'writePart', jobId: JOB, epoch: 1n, writer: 'c1n1', units: ['u0', 'u3'], reqId: 6, to: 'c1' }],
      send: [],
      reply: [reply(6, { kind: 'durable', part: { writer: 'c1n1', epoch: 1n, units: ['u0', 'u3'], pages: 2 } })],
    });
    // The staged snapshot is spent: a second commit of the epoch is refused.
    expect(step(commit(7, 1n), 31)).toEqual({ persist: [], send: [], reply: [reply(7, { kind: 'refused', reason: 'no snapshot of epoch 1 of job bank is staged' })] });
  });

  it('a failed part write becomes a refused answer to the commit', () => {
    const { step } = running();
    expect(step({ kind: 'partFailed', jobId: JOB, epoch: 1n, reqId: 6, to: 'c1', reason: 'ENOSPC' }, 30))
      .toEqual({ persist: [], send: [], reply: [reply(6, { kind: 'refused', reason: 'part of epoch 1 not durable: ENOSPC' })] });
  });

  it('commit of an epoch that is not staged is refused and persists nothing', () => {
    const { step } = running();
    step(prepare(5, 1n), 20);
    // Still freezing: nothing staged yet.
    expect(step(commit(6, 1n), 21)).toEqual({ persist: [], send: [], reply: [reply(6, { kind: 'refused', reason: 'no snapshot of epoch 1 of job bank is staged' })] });
  });

  it('P1: abort while frozen thaws at once; the snapshot that comes later is dropped', () => {
    const { p, step } = running();
    step(prepare(5, 1n), 20);
    expect(step(abort(6, 1n), 22)).toEqual({ persist: [], send: [unit({ op: 'thaw', jobId: JOB })], reply: [reply(6, { kind: 'ok' })] });
    expect(p.mayRun(JOB, 22)).toBe(true);
    expect(step(snapshotTaken(1n), 24)).toEqual(NONE);
    expect(step(commit(7, 1n), 25).persist).toEqual([]);
  });

  it('abort after the snapshot drops the staging; a commit after it is refused', () => {
    const { step } = running();
    step(prepare(5, 1n), 20);
    step(snapshotTaken(1n), 24);
    expect(step(abort(6, 1n), 26)).toEqual({ persist: [], send: [unit({ op: 'dropStaging', jobId: JOB })], reply: [reply(6, { kind: 'ok' })] });
    expect(step(commit(7, 1n), 27)).toEqual({ persist: [], send: [], reply: [reply(7, { kind: 'refused', reason: 'no snapshot of epoch 1 of job bank is staged' })] });
  });

  it('abort of another epoch touches nothing but answers ok', () => {
    const { step } = running();
    step(prepare(5, 2n), 20);
    expect(step(abort(6, 1n), 22)).toEqual({ persist: [], send: [], reply: [reply(6, { kind: 'ok' })] });
  });

  it('P2: a PREPARE for an epoch not above the highest prepared is refused and changes nothing', () => {
    const { p, step } = running();
    step(prepare(5, 3n), 20);
    step(snapshotTaken(3n), 24);
    expect(step(prepare(6, 3n), 26)).toEqual({ persist: [], send: [], reply: [reply(6, { kind: 'refused', reason: 'stale epoch 3: prepared 3' })] });
    expect(step(prepare(7, 2n), 27)).toEqual({ persist: [], send: [], reply: [reply(7, { kind: 'refused', reason: 'stale epoch 2: prepared 3' })] });
    // Epoch 3 is still staged: its commit goes through.
    expect(step(commit(8, 3n), 28).persist).toHaveLength(1);
    expect(p.jobState(JOB)).toBe('running');
  });

  it('P2: a newer PREPARE while frozen thaws and drops the older staging first, and only the newer snapshot counts', () => {
    const { step } = running();
    step(prepare(5, 1n), 20);
    step(snapshotTaken(1n), 22);
    step(prepare(6, 2n), 30);
    expect(step(prepare(7, 3n), 32)).toEqual({
      persist: [], reply: [],
      send: [unit({ op: 'thaw', jobId: JOB }), unit({ op: 'freeze', jobId: JOB }), unit({ op: 'snapshot', jobId: JOB, epoch: 3n, full: false, parentEpoch: 2n })],
    });
    expect(step(snapshotTaken(2n), 34)).toEqual(NONE); // the superseded one
    expect(step(snapshotTaken(3n, 1), 35).reply).toEqual([reply(7, { kind: 'prepared', pages: 1, bytes: 4096, done: false })]);
  });

  it('prepare of a staged job drops the older staging before freezing', () => {
    const { step } = running();
    step(prepare(5, 1n), 20);
    step(snapshotTaken(1n), 22);
    expect(step(prepare(6, 2n), 30).send).toEqual([
      unit({ op: 'dropStaging', jobId: JOB }), unit({ op: 'freeze', jobId: JOB }), unit({ op: 'snapshot', jobId: JOB, epoch: 2n, full: false, parentEpoch: 1n }),
    ]);
  });

  it('a completed job still prepares, and its PREPARED says done', () => {
    const { p, step } = running();
    step({ kind: 'unitsExited', jobId: JOB, ok: true, reason: 'all units exited 0' }, 15);
    expect(p.jobState(JOB)).toBe('completed');
    expect(p.mayRun(JOB, 15)).toBe(false);
    expect(unitSends(step(prepare(5, 4n), 20))).toEqual([
      unit({ op: 'freeze', jobId: JOB }), unit({ op: 'snapshot', jobId: JOB, epoch: 4n, full: false, parentEpoch: 3n }),
    ]);
    expect(step(snapshotTaken(4n, 2), 22).reply).toEqual([reply(5, { kind: 'prepared', pages: 2, bytes: 8192, done: true })]);
    expect(step(commit(6, 4n), 23).reply).toEqual([reply(6, { kind: 'durable', part: { writer: 'c1n1', epoch: 4n, units: ['u0', 'u3'], pages: 2 } })]);
  });

  it('a completed job is never fenced: its lease is no longer counted', () => {
    const { p, step } = running();
    step({ kind: 'unitsExited', jobId: JOB, ok: true, reason: 'done' }, 15);
    expect(unitSends(step(tick, 5000))).toEqual([]);
    expect(p.jobState(JOB)).toBe('completed');
  });

  it.each(['failed', 'stopped', 'fenced'] as const)('a %s job refuses to prepare', (state) => {
    const { p, step } = running();
    if (state === 'failed') step({ kind: 'unitsExited', jobId: JOB, ok: false, reason: 'u0 exited 1' }, 15);
    if (state === 'stopped') step(stop(2), 15);
    if (state === 'fenced') step(tick, 510);
    expect(p.jobState(JOB)).toBe(state);
    const t = state === 'fenced' ? 511 : 20;
    expect(step(prepare(5, 1n), t).reply).toEqual([reply(5, { kind: 'refused', reason: `job bank is ${state} here` })]);
  });

  it('prepare of an unknown job is refused', () => {
    const { step } = make();
    expect(step(prepare(5, 1n), 0).reply).toEqual([reply(5, { kind: 'refused', reason: 'job bank is unknown here' })]);
  });

  it('P1/P5: a stop while frozen thaws, kills and drops the round; the late snapshot is ignored', () => {
    const { p, step } = running();
    step(prepare(5, 1n), 20);
    expect(step(stop(6), 22)).toEqual({
      persist: [],
      send: [unit({ op: 'thaw', jobId: JOB }), unit({ op: 'kill', jobId: JOB })],
      // The PREPARE in flight is answered too: the freeze it started will not finish.
      reply: [reply(5, { kind: 'refused', reason: 'epoch 1 not prepared: stopped by the cluster' }), reply(6, { kind: 'ok' })],
    });
    expect(p.jobState(JOB)).toBe('stopped');
    expect(step(snapshotTaken(1n), 24)).toEqual(NONE);
  });
});

describe('NodeParticipant: P1 freeze timeout', () => {
  it('thaws and refuses the PREPARE exactly freezeTimeoutMs after the freeze', () => {
    const { p, step } = running();
    step(prepare(5, 1n), 20);
    expect(p.nextDeadline()).toBe(50); // the heartbeat comes first
    step(tick, 50);
    expect(p.nextDeadline()).toBe(100);
    step(tick, 100);
    expect(p.nextDeadline()).toBe(120); // 20 + freezeTimeoutMs
    expect(unitSends(step(tick, 119))).toEqual([]);
    expect(step(tick, 120)).toEqual({
      persist: [],
      send: [unit({ op: 'thaw', jobId: JOB })],
      reply: [reply(5, { kind: 'refused', reason: 'freeze of epoch 1 took over 100 ms' })],
    });
    expect(p.mayRun(JOB, 120)).toBe(true);
    // The snapshot that finally comes is not taken for PREPARED.
    expect(step(snapshotTaken(1n), 121)).toEqual(NONE);
  });
});

describe('NodeParticipant: P3 fencing by cluster incarnation', () => {
  it('refuses a call from an older cluster incarnation before anything else', () => {
    const { p, step } = running();
    // The cluster restarted (incarnation 2) and talks to us.
    expect(step(prepare(5, 1n, 2n), 20).send).toHaveLength(2);
    step(snapshotTaken(1n), 22);
    // The old incarnation's stop must not kill the job, nor its commit write anything.
    expect(step(stop(6, 1n), 24)).toEqual({
      persist: [], send: [],
      reply: [reply(6, { kind: 'refused', reason: 'fenced: cluster incarnation 1 is older than 2' })],
    });
    expect(p.jobState(JOB)).toBe('running');
    expect(step(call({ kind: 'commit', jobId: JOB, epoch: 1n }, 7, 1n), 25)).toEqual({
      persist: [], send: [],
      reply: [reply(7, { kind: 'refused', reason: 'fenced: cluster incarnation 1 is older than 2' })],
    });
    // The new incarnation's commit still finds epoch 1 staged.
    expect(step(call({ kind: 'commit', jobId: JOB, epoch: 1n }, 8, 2n), 26).persist).toHaveLength(1);
  });

  it('an older incarnation cannot start a job', () => {
    const { p, step } = make();
    step(tick, 0);
    step(call({ kind: 'stopJob', jobId: 'none', gen: 1 }, 1, 3n), 1);
    expect(step(startJob(2, {}, 2n), 2)).toEqual({
      persist: [], send: [], reply: [reply(2, { kind: 'refused', reason: 'fenced: cluster incarnation 2 is older than 3' })],
    });
    expect(p.jobState(JOB)).toBeNull();
  });
});

describe('NodeParticipant: P4 leases', () => {
  it('fences a job exactly at leaseUntil: kill in that step, state fenced, mayRun false', () => {
    const { p, step } = running(); // started at 10 with a 500 ms lease: until 510
    for (let t = 50; t < 510; t += 50) step(tick, t);
    expect(p.nextDeadline()).toBe(510);
    expect(p.mayRun(JOB, 509)).toBe(true);
    expect(p.mayRun(JOB, 510)).toBe(false); // before any step: the unit API serves nothing past the lease
    expect(unitSends(step(tick, 509))).toEqual([]);
    expect(p.jobState(JOB)).toBe('running');
    expect(step(tick, 510)).toEqual({ persist: [], reply: [], send: [unit({ op: 'kill', jobId: JOB })] });
    expect(p.jobState(JOB)).toBe('fenced');
    expect(p.mayRun(JOB, 510)).toBe(false);
    // Fenced once: no second kill.
    expect(unitSends(step(tick, 600))).toEqual([]);
  });

  it('a lease renewal counts from the heartbeat send, not from the answer', () => {
    const { p, step } = running();
    step(tick, 300);
    // The answer to the heartbeat sent at 300 arrives at 450: lease until 300 + 500 = 800 (not 950).
    step(beatAnswer(300), 450);
    expect(p.mayRun(JOB, 799)).toBe(true);
    expect(p.mayRun(JOB, 800)).toBe(false);
    expect(unitSends(step(tick, 799))).toEqual([]);
    expect(step(tick, 800).send).toContainEqual(unit({ op: 'kill', jobId: JOB }));
    expect(p.jobState(JOB)).toBe('fenced');
  });

  it('an old heartbeat answer never shortens the lease, and a job not named is not renewed', () => {
    const { p, step } = running();
    step(beatAnswer(300), 310);
    step(beatAnswer(0), 320); // late answer to the first heartbeat: 0 + 500 < 800
    expect(p.mayRun(JOB, 799)).toBe(true);
    step(beatAnswer(400, { leasedJobs: ['other'] }), 410);
    expect(p.mayRun(JOB, 800)).toBe(false);
  });

  it('the lease lapses while frozen: thaw and kill in that step, and the job takes part in no round', () => {
    const { p, step } = running();
    step(prepare(5, 1n), 450);
    const out = step(tick, 510);
    expect(unitSends(out)).toEqual([unit({ op: 'thaw', jobId: JOB }), unit({ op: 'kill', jobId: JOB })]);
    expect(p.jobState(JOB)).toBe('fenced');
    expect(step(snapshotTaken(1n), 511)).toEqual(NONE);
    expect(step(prepare(6, 2n), 512).reply).toEqual([reply(6, { kind: 'refused', reason: 'job bank is fenced here' })]);
  });

  it('a restart of a fenced job runs again under a new lease and keeps its highest epoch (P2)', () => {
    const { p, step } = running();
    step(prepare(5, 4n), 20);
    step(snapshotTaken(4n), 22);
    step(tick, 510);
    expect(p.jobState(JOB)).toBe('fenced');
    step(startJob(9, { gen: 8 }), 600);
    step({ kind: 'spawned', jobId: JOB, reqId: 9, corrupt: null }, 602);
    expect(p.jobState(JOB)).toBe('running');
    expect(step(prepare(10, 4n), 610).reply).toEqual([reply(10, { kind: 'refused', reason: 'stale epoch 4: prepared 4' })]);
    expect(p.mayRun(JOB, 1099)).toBe(true);
    expect(p.mayRun(JOB, 1100)).toBe(false);
  });
});

describe('NodeParticipant: a stop that overtakes its start', () => {
  it('a start whose gen is below a stop already seen is refused, and a later start runs', () => {
    const h = new NodeParticipant(CONFIG);
    h.step(tick, 0);
    // Calls may be reordered: the stop (sent after start gen 7) arrives first.
    const stopped = h.step(call({ kind: 'stopJob', jobId: JOB, gen: 8 }, 2), 5);
    expect(stopped.reply).toEqual([reply(2, { kind: 'ok' })]);
    const late = h.step(startJob(1, { gen: 7 }), 6);
    expect(late).toEqual({ persist: [], send: [], reply: [reply(1, { kind: 'refused', reason: `start 7 of job ${JOB} was stopped before it arrived` })] });
    expect(h.jobState(JOB)).toBeNull();
    const fresh = h.step(startJob(3, { gen: 9 }), 7);
    expect(fresh.send).toEqual([unit({ op: 'spawn', jobId: JOB, units: ['u0', 'u3'], sources: [], reqId: 3 })]);
  });

  it('a new cluster incarnation starts its gens afresh', () => {
    const h = new NodeParticipant(CONFIG);
    h.step(tick, 0);
    h.step(call({ kind: 'stopJob', jobId: JOB, gen: 50 }, 2), 5);
    const out = h.step(startJob(1, { gen: 3 }, 2n), 6);
    expect(out.send).toEqual([unit({ op: 'spawn', jobId: JOB, units: ['u0', 'u3'], sources: [], reqId: 1 })]);
  });
});

describe('NodeParticipant: P6 remembered stops are bounded', () => {
  it('stops of many jobs it never held are forgotten past 4 x maxJobs, the newest still fences its late start', () => {
    const h = new NodeParticipant({ ...CONFIG, maxJobs: 2 });
    h.step(tick, 0);
    for (let i = 0; i < 50; i++) h.step(call({ kind: 'stopJob', jobId: `j${i}`, gen: 10 }, 100 + i), 1);
    expect(() => h.checkInvariants()).not.toThrow();
    const late = h.step(call({ kind: 'startJob', jobId: 'j49', units: ['u0'], sources: [], leaseMs: LEASE_MS, gen: 9 }, 200), 2);
    expect(late.reply).toEqual([reply(200, { kind: 'refused', reason: 'start 9 of job j49 was stopped before it arrived' })]);
  });
});
