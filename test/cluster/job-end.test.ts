import { describe, expect, it } from 'vitest';
import { EndWatch, type AgentJobState, type JobReport } from '../../src/cluster/core/job-end.js';
import { jobReportsFromPb, MAX_REPORTED_JOBS } from '../../src/cluster/codec.js';
import { HeartbeatRequest } from '../../src/gen/gridckpt/v1/cluster.js';
import { StartGens } from '../../src/node/job-reports.js';

// The cluster's judgment of the job states its agents push on their
// heartbeats (src/cluster/core/job-end.ts), exact decisions for given
// reports; and the reports from the agent's side to the wire and back.

const report = (state: AgentJobState, gen: bigint, lastError = ''): JobReport => ({ jobId: 'bank', state, gen, lastError });

describe('EndWatch: a job\'s end from its nodes\' reports', () => {
  it('E2: completed only once every node reported completed for its current start', () => {
    const w = new EndWatch(['a', 'b'], new Map([['a', 7n], ['b', 8n]]));
    expect(w.onBeat('a', report('running', 7n), true)).toEqual({ kind: 'none' });
    expect(w.onBeat('a', report('completed', 7n), true)).toEqual({ kind: 'none' });
    expect(w.completedOn()).toEqual(['a']);
    expect(w.onBeat('b', report('completed', 8n), true)).toEqual({ kind: 'all-completed' });
    w.checkInvariants();
  });

  it('E1: a report on an earlier start (before a restore) is stale and completes nothing', () => {
    // Node a's units completed under start 7; the job was restored on a and b with starts 9 and 10.
    const gens = new Map([['a', 9n], ['b', 10n]]);
    const w = new EndWatch(['a', 'b'], gens);
    expect(w.onBeat('a', report('completed', 7n), true)).toEqual({ kind: 'stale', nodeId: 'a', reportedGen: 7n, startGen: 9n });
    expect(w.onBeat('b', report('completed', 10n), true)).toEqual({ kind: 'none' });
    expect(w.completedOn()).toEqual(['b']);
    expect(w.isDecided()).toBe(false);
    // A stale fence is no reason to restore either.
    expect(w.onBeat('a', report('fenced', 7n), true).kind).toBe('stale');
    // Once a reports on start 9, it counts.
    expect(w.onBeat('a', report('completed', 9n), true)).toEqual({ kind: 'all-completed' });
  });

  it('E1: a node with no start from this coordinator (a resumed job) pins the gen its first report carries', () => {
    const gens = new Map<string, bigint>();
    const w = new EndWatch(['a'], gens);
    expect(w.onBeat('a', report('running', 5n), true)).toEqual({ kind: 'none' });
    expect(gens.get('a')).toBe(5n);
    expect(w.onBeat('a', report('completed', 4n), true).kind).toBe('stale');
    expect(w.onBeat('a', report('completed', 5n), true)).toEqual({ kind: 'all-completed' });
  });

  it('E3: decides once: fenced, then nothing more; failed and stopped end the watch too', () => {
    const w = new EndWatch(['a', 'b'], new Map([['a', 1n], ['b', 2n]]));
    expect(w.onBeat('a', report('fenced', 1n), true)).toEqual({ kind: 'fenced', nodeId: 'a' });
    expect(w.onBeat('a', report('fenced', 1n), true)).toEqual({ kind: 'none' });
    expect(w.onBeat('b', report('completed', 2n), true)).toEqual({ kind: 'none' });
    const f = new EndWatch(['a'], new Map([['a', 1n]]));
    expect(f.onBeat('a', report('failed', 1n, 'code 3'), true)).toEqual({ kind: 'ended', nodeId: 'a', state: 'failed', lastError: 'code 3' });
    expect(f.onBeat('a', report('completed', 1n), true)).toEqual({ kind: 'none' });
    const s = new EndWatch(['a'], new Map([['a', 1n]]));
    expect(s.onBeat('a', report('stopped', 1n), true).kind).toBe('ended');
  });

  it('E4: a job missing from a full report is lost only where this coordinator started nothing', () => {
    const started = new EndWatch(['a'], new Map([['a', 3n]]));
    // The beat may have left before the start reached the agent.
    expect(started.onBeat('a', null, true)).toEqual({ kind: 'none' });
    const resumed = new EndWatch(['a'], new Map());
    // An agent that does not report (an empty list, not full) says nothing.
    expect(resumed.onBeat('a', null, false)).toEqual({ kind: 'none' });
    expect(resumed.onBeat('a', null, true)).toEqual({ kind: 'lost', nodeId: 'a' });
  });

  it('ignores nodes that are not the job\'s', () => {
    const w = new EndWatch(['a'], new Map([['a', 1n]]));
    expect(w.onBeat('z', report('completed', 1n), true)).toEqual({ kind: 'none' });
    expect(w.completedOn()).toEqual([]);
  });
});

describe('job reports on the wire', () => {
  it('the agent\'s reports survive agent -> wire -> cluster, each with the gen of the start that returned', () => {
    const gens = new StartGens();
    gens.started('bank', 42n);
    const reports = gens.reports([
      { jobId: 'bank', state: 'completed', lastError: '' },
      { jobId: 'cli-job', state: 'failed', lastError: 'x'.repeat(5_000) },
    ]);
    const wire = HeartbeatRequest.decode(HeartbeatRequest.encode({ nodeId: 'n1', incarnation: 3n, seq: 9n, jobs: reports, reportsJobs: true }).finish());
    expect(wire.reportsJobs).toBe(true);
    const back = jobReportsFromPb(wire.jobs);
    expect(back).toEqual([
      { jobId: 'bank', state: 'completed', gen: 42n, lastError: '' },
      // A job started without a gen (the CLI) reports 0; a long error is cut.
      { jobId: 'cli-job', state: 'failed', gen: 0n, lastError: 'x'.repeat(1_024) },
    ]);
  });

  it('an old agent\'s beat decodes to no report', () => {
    const wire = HeartbeatRequest.decode(HeartbeatRequest.encode(HeartbeatRequest.fromPartial({ nodeId: 'n1', incarnation: 3n, seq: 9n })).finish());
    expect(wire.reportsJobs).toBe(false);
    expect(jobReportsFromPb(wire.jobs)).toEqual([]);
  });

  it('refuses bad reports with invalid-argument', () => {
    const ok = { jobId: 'bank', state: 'running', gen: 1n, lastError: '' };
    expect(() => jobReportsFromPb([{ ...ok, state: 'exploded' }])).toThrow(/reported in state "exploded"/);
    expect(() => jobReportsFromPb([{ ...ok, jobId: '../x' }])).toThrow(/bad reported job id/);
    expect(() => jobReportsFromPb([ok, ok])).toThrow(/reported twice/);
    expect(() => jobReportsFromPb([{ ...ok, lastError: 'e'.repeat(4_097) }])).toThrow(/last_error of 4097/);
    expect(() => jobReportsFromPb(Array.from({ length: MAX_REPORTED_JOBS + 1 }, (_, i) => ({ ...ok, jobId: `j${i}` })))).toThrow(/at most 1024/);
    try {
      jobReportsFromPb([{ ...ok, state: '' }]);
      expect.unreachable();
    } catch (err) {
      expect((err as { kind?: string }).kind).toBe('invalid-argument');
    }
  });
});
