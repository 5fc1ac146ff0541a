import { describe, expect, it } from 'vitest';
import { NodeParticipant, LOCAL, type ParticipantConfig, type ParticipantInput, type ParticipantStep } from '../../../src/node/core/participant.js';
import type { AgentRequest } from '../../../src/protocol/messages.js';

// Exact-output tests of the participant core's bounded job table (P6) and of
// a unit failing while the job's other units run (issue 8): ended jobs are
// forgotten, the first ended first, past maxEndedJobs — never one a
// checkpoint step still holds — and a start is refused only for live jobs.

const CONFIG: ParticipantConfig = { nodeId: 'n1', incarnation: 1n, capacityUnits: 64, heartbeatIntervalMs: 50, freezeTimeoutMs: 100, maxJobs: 2, maxEndedJobs: 2, defaultFullEvery: 8 };

function make() {
  const p = new NodeParticipant(CONFIG);
  let t = 0;
  let req = 1;
  const step = (input: ParticipantInput): ParticipantStep => {
    const out = p.step(input, (t += 1));
    p.checkInvariants();
    return out;
  };
  const start = (jobId: string): ParticipantStep => {
    const reqId = req++;
    const r: AgentRequest = { kind: 'startJob', jobId, units: ['u'], sources: [], leaseMs: null, gen: reqId };
    const out = step({ kind: 'call', call: { reqId, from: LOCAL, incarnation: 0n, req: r } });
    if (out.reply.length > 0) return out; // refused
    return step({ kind: 'spawned', jobId, reqId, corrupt: null, restored: null });
  };
  const end = (jobId: string) => step({ kind: 'unitsExited', jobId, ok: true, reason: 'done' });
  return { p, step, start, end };
}

const forgets = (out: ParticipantStep) => out.send.flatMap((s) => (s.to === 'units' && s.unit.op === 'forget' ? [s.unit.jobId] : []));

describe('NodeParticipant: ended jobs (P6)', () => {
  it('forgets the first ended job once more than maxEndedJobs ended, and refuses starts only past maxJobs live ones', () => {
    const { p, start, end } = make();
    start('a');
    start('b');
    expect(start('c').reply).toEqual([{ to: LOCAL, reqId: 3, answer: { kind: 'refused', reason: 'node n1 already runs 2 jobs (limit 2)', code: 'resource-exhausted' } }]);
    expect(forgets(end('a'))).toEqual([]);
    expect(forgets(end('b'))).toEqual([]);
    start('c');
    expect(forgets(end('c'))).toEqual(['a']);
    expect(p.jobIds().sort()).toEqual(['b', 'c']);
    expect(p.jobState('a')).toBeNull();
    // The id is free: a start of "a" is a new job, and the table stays bounded.
    expect(start('a').reply).toEqual([{ to: LOCAL, reqId: 5, answer: { kind: 'ok' } }]);
    expect(forgets(end('a'))).toEqual(['b']);
  });

  it("never forgets an ended job a checkpoint step still holds (a completed job's final round)", () => {
    const { p, step, start, end } = make();
    start('a');
    // A coordinator's PREPARE of a: frozen, then its snapshot staged.
    step({ kind: 'call', call: { reqId: 50, from: 'c1/coord', incarnation: 1n, req: { kind: 'prepare', jobId: 'a', epoch: 1n, parentEpoch: null, full: true } } });
    step({ kind: 'snapshotTaken', jobId: 'a', epoch: 1n, pages: 1, bytes: 4096 });
    end('a');
    start('b');
    end('b');
    start('c');
    expect(forgets(end('c'))).toEqual(['b']);
    expect(p.jobState('a')).toBe('completed');
  });

  it('a unit that fails while others run fails the job and stops the others (gracefully: its pages stay)', () => {
    const { p, step, start } = make();
    start('a');
    const out = step({ kind: 'unitsExited', jobId: 'a', ok: false, reason: 'unit u was killed by SIGKILL', live: true });
    expect(out.send.filter((s) => s.to === 'units')).toEqual([{ to: 'units', unit: { op: 'kill', jobId: 'a', graceful: true } }]);
    expect(p.summary('a')).toMatchObject({ state: 'failed', lastError: 'unit u was killed by SIGKILL' });
  });
});
