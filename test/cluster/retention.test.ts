// The retention core (src/cluster/core/retention.ts): exact actions for
// chains, grid jobs and restores (R1-R4), and a property test against a naive
// model: whatever the commits, nothing a root's chain needs is retired.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RetentionCore, validateRetention, type EpochFacts, type RetentionAction } from '../../src/cluster/core/retention.js';
import { GRID_KEEP_LINES } from '../../src/protocol/core/grid-lines.js';

const policy = { keepLast: 3, keepForMs: 0 };

function facts(epoch: number, parent: number | null): EpochFacts {
  return { epoch: BigInt(epoch), parentEpoch: parent === null ? null : BigInt(parent), full: parent === null, committedAtMs: epoch * 100 };
}

/** Commits epochs 1..n (every fullEvery-th full) and performs every retirement at once; returns what was retired. */
function run(core: RetentionCore, jobId: string, n: number, fullEvery: number, grid = false): bigint[] {
  const retired: bigint[] = [];
  core.step({ kind: 'jobKnown', jobId, gridManaged: grid, policy, epochs: [] }, 0);
  let sinceFull = 0;
  for (let e = 1; e <= n; e++) {
    const full = e === 1 || sinceFull + 1 >= fullEvery;
    sinceFull = full ? 0 : sinceFull + 1;
    // A grid job: the PREPARE of epoch e names e - 1, the grid's newest line.
    let actions: RetentionAction[] = grid && e > 1 ? core.step({ kind: 'gridLine', jobId, epoch: BigInt(e - 1) }, e * 100) : [];
    actions.push(...core.step({ kind: 'committed', jobId, facts: facts(e, full ? null : e - 1) }, e * 100));
    while (actions.length > 0) {
      core.checkInvariants();
      const a = actions[0]!;
      retired.push(a.epoch);
      actions = core.step({ kind: 'retired', jobId, epoch: a.epoch }, e * 100);
    }
  }
  return retired;
}

describe('RetentionCore', () => {
  it('keeps the last K and their chains back to the full epoch, retires the rest newest first (R1, R2, R5)', () => {
    const core = new RetentionCore({ maxJobs: 4 });
    // Full epochs 1, 5, 9; K = 3.
    const retired = run(core, 'j', 10, 4);
    // Newest 3: 8, 9, 10; 8's chain is 8, 7, 6, 5 — so 1..4 go.
    expect(retired).toEqual([4n, 3n, 2n, 1n]);
    expect(core.retained('j')).toEqual([5n, 6n, 7n, 8n, 9n, 10n]);
    // Within K + chain bound - 1.
    expect(core.retained('j').length).toBeLessThanOrEqual(3 + 4 - 1);
  });

  it('a grid job keeps at least the grid\'s lines (R3)', () => {
    const core = new RetentionCore({ maxJobs: 4 });
    const retired = run(core, 'g', 20, 4, true);
    const kept = core.retained('g');
    // Lines confirmed: 1..19 (20's line is not confirmed yet): the newest eight lines 12..19, and 20.
    for (let e = 19 - GRID_KEEP_LINES + 1; e <= 20; e++) expect(kept).toContain(BigInt(e));
    expect(retired.length).toBeGreaterThan(0);
    expect(retired.every((e) => e <= BigInt(19 - GRID_KEEP_LINES))).toBe(true);
  });

  it('epochs above a grid restore no longer count; epochs found at start count for a local job only', () => {
    const core = new RetentionCore({ maxJobs: 4 });
    const epochs = [facts(1, null), facts(2, 1), facts(3, 2), facts(4, 3), facts(5, null), facts(6, 5)];
    core.step({ kind: 'jobKnown', jobId: 'g', gridManaged: true, policy, epochs }, 0);
    // Nothing counted yet: nothing may go, whatever the commits below eight.
    expect(core.step({ kind: 'gridRestored', jobId: 'g', epoch: 6n }, 0)).toEqual([]);
    for (let e = 7; e <= 7 + GRID_KEEP_LINES - 1; e++) {
      expect(core.step({ kind: 'committed', jobId: 'g', facts: facts(e, e === 7 ? null : e - 1) }, 0)).toEqual([]);
      if (e < 7 + GRID_KEEP_LINES - 1) expect(core.step({ kind: 'gridLine', jobId: 'g', epoch: BigInt(e) }, 0)).toEqual([]);
    }
    // A commit is no line until a PREPARE names it: the eighth confirmed line above 1..6 lets them go, newest first.
    expect(core.step({ kind: 'gridLine', jobId: 'g', epoch: 14n }, 0)).toEqual([{ kind: 'retire', jobId: 'g', epoch: 6n }]);

    const local = new RetentionCore({ maxJobs: 4 });
    expect(local.step({ kind: 'jobKnown', jobId: 'l', gridManaged: false, policy, epochs: [...epochs, facts(7, 6)] }, 0)).toEqual([{ kind: 'retire', jobId: 'l', epoch: 4n }]);
  });

  it('a restore passing over epochs un-counts them', () => {
    const core = new RetentionCore({ maxJobs: 4 });
    core.step({ kind: 'jobKnown', jobId: 'g', gridManaged: true, policy, epochs: [] }, 0);
    for (let e = 1; e <= 8; e++) {
      core.step({ kind: 'committed', jobId: 'g', facts: facts(e, e === 1 ? null : e - 1) }, 0);
      core.step({ kind: 'gridLine', jobId: 'g', epoch: BigInt(e) }, 0);
    }
    core.step({ kind: 'gridRestored', jobId: 'g', epoch: 3n }, 0);
    // 4..8 were passed over: the grid's lines are 1..3; five new lines (9..13) make eight only with 4..8 counted.
    for (let e = 9; e <= 13; e++) {
      expect(core.step({ kind: 'committed', jobId: 'g', facts: facts(e, e === 9 ? null : e - 1) }, 0)).toEqual([]);
      expect(core.step({ kind: 'gridLine', jobId: 'g', epoch: BigInt(e) }, 0)).toEqual([]);
    }
  });

  it('the age rule keeps recent epochs of a local job; a failed retirement waits for the next commit', () => {
    const core = new RetentionCore({ maxJobs: 4 });
    core.step({ kind: 'jobKnown', jobId: 'j', gridManaged: false, policy: { keepLast: 1, keepForMs: 250 }, epochs: [] }, 0);
    for (let e = 1; e <= 3; e++) expect(core.step({ kind: 'committed', jobId: 'j', facts: facts(e, null) }, e * 100)).toEqual([]);
    expect(core.step({ kind: 'committed', jobId: 'j', facts: facts(4, null) }, 400)).toEqual([{ kind: 'retire', jobId: 'j', epoch: 1n }]);
    expect(core.step({ kind: 'retireFailed', jobId: 'j', epoch: 1n, reason: 'EROFS' }, 400)).toEqual([]);
    expect(core.status()[0]!.lastError).toContain('EROFS');
    expect(core.step({ kind: 'committed', jobId: 'j', facts: facts(5, null) }, 500)).toEqual([{ kind: 'retire', jobId: 'j', epoch: 2n }]);
  });

  it('validates a policy, naming the field', () => {
    expect(() => validateRetention({ keepLast: 0, keepForMs: 0 }, 'j')).toThrow(/retention.keepLast/);
    expect(() => validateRetention({ keepLast: 2, keepForMs: -1 }, 'j')).toThrow(/retention.keepForMs/);
    expect(validateRetention({ keepLast: 2, keepForMs: 5 }, 'j')).toEqual({ keepLast: 2, keepForMs: 5 });
  });

  it('property: no retired epoch is on the chain of any of the newest K or of any epoch still present (naive model)', () => {
    fc.assert(fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 5 }), (fulls, keepLast) => {
      const core = new RetentionCore({ maxJobs: 1 });
      core.step({ kind: 'jobKnown', jobId: 'j', gridManaged: false, policy: { keepLast, keepForMs: 0 }, epochs: [] }, 0);
      const present = new Map<number, number | null>();
      fulls.forEach((full, i) => {
        const e = i + 1;
        const parent = full || e === 1 ? null : e - 1;
        present.set(e, parent);
        let actions = core.step({ kind: 'committed', jobId: 'j', facts: facts(e, parent) }, 0);
        while (actions.length > 0) {
          const gone = Number(actions[0]!.epoch);
          present.delete(gone);
          actions = core.step({ kind: 'retired', jobId: 'j', epoch: BigInt(gone) }, 0);
        }
        // Model: every one of the newest keepLast epochs restores (its chain is present).
        const newest = [...present.keys()].sort((a, b) => a - b).slice(-keepLast);
        expect(newest).toContain(e);
        // R5: every epoch still present restores (its parent went after it, if at all).
        for (const root of [...newest, ...present.keys()]) {
          for (let at: number | null = root; at !== null; at = present.get(at)!) expect(present.has(at), `epoch ${at} of ${root}'s chain`).toBe(true);
        }
      });
    }));
  });
});
