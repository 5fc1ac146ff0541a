import { describe, expect, it } from 'vitest';
import { trimEpochs } from '../../src/node/job-shell.js';

// The shell's per-epoch records stay bounded to the newest few epochs.

describe('trimEpochs', () => {
  it('keeps the newest epochs, whatever order they were set in', () => {
    const m = new Map<bigint, string>([[5n, 'e'], [1n, 'a'], [7n, 'g'], [3n, 'c'], [2n, 'b'], [6n, 'f']]);
    trimEpochs(m);
    expect([...m.keys()].sort()).toEqual([3n, 5n, 6n, 7n]);
    expect(m.get(5n)).toBe('e');
  });

  it('leaves a map at or under the bound alone', () => {
    const m = new Map<bigint, number>([[2n, 2], [1n, 1]]);
    trimEpochs(m, 2);
    expect([...m.keys()]).toEqual([2n, 1n]);
    trimEpochs(m, 1);
    expect([...m.keys()]).toEqual([2n]);
  });
});
