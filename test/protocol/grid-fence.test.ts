import { describe, expect, it } from 'vitest';
import { compareGridFence, newerGridFence, NO_GRID_FENCE, staleGridRefusal } from '../../src/protocol/grid-fence.js';

// protocol/grid-fence.ts: grid fences are ordered term first, then incarnation (F1).

describe('grid fence', () => {
  it('orders by leader term first, then by incarnation', () => {
    expect(compareGridFence({ term: 2n, incarnation: 1n }, { term: 1n, incarnation: 99n })).toBe(1);
    expect(compareGridFence({ term: 1n, incarnation: 3n }, { term: 1n, incarnation: 4n })).toBe(-1);
    expect(compareGridFence({ term: 0n, incarnation: 4n }, { term: 0n, incarnation: 4n })).toBe(0);
    // A grid elected through etcd wins over any grid without etcd.
    expect(compareGridFence({ term: 1n, incarnation: 1n }, { term: 0n, incarnation: 1_000n })).toBe(1);
  });

  it('refuses only what is older than what was seen, naming both', () => {
    expect(staleGridRefusal(NO_GRID_FENCE, { term: 0n, incarnation: 1n })).toBeNull();
    expect(staleGridRefusal({ term: 3n, incarnation: 2n }, { term: 3n, incarnation: 2n })).toBeNull();
    expect(staleGridRefusal({ term: 3n, incarnation: 2n }, { term: 4n, incarnation: 1n })).toBeNull();
    expect(staleGridRefusal({ term: 3n, incarnation: 2n }, { term: 2n, incarnation: 5n })).toBe('fenced: a call from a deposed grid: its leader term 2 (incarnation 5) is older than the leader term 3 (incarnation 2) this cluster has seen');
    expect(staleGridRefusal({ term: 0n, incarnation: 3n }, { term: 0n, incarnation: 2n })).toBe('fenced: a call from a deposed grid: its incarnation 2 is older than the incarnation 3 this cluster has seen');
    expect(newerGridFence({ term: 1n, incarnation: 5n }, { term: 2n, incarnation: 1n })).toEqual({ term: 2n, incarnation: 1n });
  });
});
