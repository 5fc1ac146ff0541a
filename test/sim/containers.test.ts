import { describe, expect, it } from 'vitest';
import { runBatch } from '../../src/sim/batch.js';
import { runContainersSeed } from '../../src/sim/containers/run.js';
import { MUTANTS, scenarioOf } from '../../src/sim/mutants.js';

// The containers scenario (issue 9, docs/ownership.md): the ownership core on
// 4 simulated agents under faults, checked after every event. Seeds pass,
// replay byte for byte, and each ownership mutant is caught (§3.1 one owner,
// exactly once per cut, no lost write, no stale copy).

describe('sim --scenario containers', () => {
  it('30 seeds pass, with pages moving, cuts committed, and the faults injected', () => {
    const { results } = runBatch({ seeds: Array.from({ length: 30 }, (_, i) => i + 1), mutant: null, stopAtFirst: false, scenario: 'containers' });
    expect(results.filter((r) => !r.ok).map((r) => `${r.seed}: ${r.violation}`)).toEqual([]);
    const sum = (k: string) => results.reduce((a, r) => a + (r.faultCounts[k] ?? 0), 0);
    expect(sum('stat:transfers')).toBeGreaterThan(1000);
    expect(sum('stat:cuts')).toBeGreaterThan(100);
    expect(sum('stat:inFlightAtFreeze')).toBeGreaterThan(0);
    expect(sum('stat:recoveries')).toBeGreaterThan(0);
    expect(sum('stat:resent')).toBeGreaterThan(0);
  }, 60_000);

  it('a seed replays byte for byte', () => {
    const a = runContainersSeed({ seed: 11, trace: true });
    const b = runContainersSeed({ seed: 11, trace: true });
    expect(a.trace.length).toBeGreaterThan(500);
    expect(b.trace).toEqual(a.trace);
    expect(runContainersSeed({ seed: 12, trace: true }).trace).not.toEqual(a.trace);
  });

  const ownership = MUTANTS.filter((m) => scenarioOf(m) === 'containers');
  it('names the four ownership mutants of issue 9', () => {
    expect(ownership.map((m) => m.name).sort()).toEqual(['no-gate-during-freeze', 'requester-and-owner-both-save', 'sender-drops-before-ack', 'stale-copy-after-invalidate']);
  });
  for (const m of ownership) {
    it(`${m.name} is caught within 5 seeds, by ${m.caughtBy}`, () => {
      const { results } = runBatch({ seeds: [1, 2, 3, 4, 5], mutant: m.name, stopAtFirst: true });
      const caught = results.find((r) => !r.ok);
      expect(caught, `${m.name} not caught`).toBeDefined();
      expect(caught!.violation).toMatch(new RegExp(`^(${m.caughtBy})`));
    });
  }
});
