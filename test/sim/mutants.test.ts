import { describe, expect, it } from 'vitest';
import { runBatch } from '../../src/sim/batch.js';
import { MUTANTS } from '../../src/sim/mutants.js';

// Each mutant is a deliberately broken variant; the checkers must catch it
// within the CI seed budget (MUTANT_SEEDS), naming the invariant it breaks.
// A checker that cannot fail proves nothing.

const MUTANT_SEEDS = 40;

describe('sim mutants', () => {
  it('names at least the five the issue lists', () => {
    const names = MUTANTS.map((m) => m.name);
    for (const n of ['commit-before-all-prepared', 'restore-before-lease-lapse', 'skip-fence-on-lease-loss', 'skip-thaw-on-abort', 'reuse-epoch-number']) {
      expect(names).toContain(n);
    }
  });

  for (const m of MUTANTS) {
    it(`${m.name} is caught within ${MUTANT_SEEDS} seeds, by ${m.caughtBy}`, () => {
      const seeds = Array.from({ length: MUTANT_SEEDS }, (_, i) => i + 1);
      const { results } = runBatch({ seeds, mutant: m.name, stopAtFirst: true });
      const caught = results.find((r) => !r.ok);
      expect(caught, `${m.name} was not caught in ${MUTANT_SEEDS} seeds`).toBeDefined();
      expect(caught!.violation).toMatch(new RegExp(`^(${m.caughtBy})`));
    }, 120_000);
  }
});
