import { describe, expect, it } from 'vitest';
import { placeUnits, moveFailedNode } from '../../src/cluster/core/placement.js';

describe('placement', () => {
  it('places least-loaded first within capacity', () => {
    const p = placeUnits(['u0', 'u1', 'u2', 'u3'], [
      { nodeId: 'a', capacityUnits: 2, placedUnits: 0 },
      { nodeId: 'b', capacityUnits: 4, placedUnits: 1 },
      { nodeId: 'c', capacityUnits: 1, placedUnits: 1 },
    ]);
    expect([...p]).toEqual([['u0', 'b'], ['u1', 'a'], ['u2', 'b'], ['u3', 'a']]);
    expect(() => placeUnits(['u0', 'u1'], [{ nodeId: 'a', capacityUnits: 1, placedUnits: 0 }])).toThrow(/2 units do not fit: the alive nodes have room for 1/);
  });

  it('moves all units of a failed node to one spare, and nothing else', () => {
    const before = new Map([['u0', 'a'], ['u1', 'b'], ['u2', 'a']]);
    const r = moveFailedNode(before, 'a', [
      { nodeId: 'b', capacityUnits: 2, placedUnits: 1 },
      { nodeId: 'c', capacityUnits: 2, placedUnits: 0 },
    ]);
    expect(r.spareNodeId).toBe('c');
    expect(r.moved).toEqual(['u0', 'u2']);
    expect([...r.placement]).toEqual([['u0', 'c'], ['u1', 'b'], ['u2', 'c']]);
    expect(() => moveFailedNode(before, 'a', [{ nodeId: 'b', capacityUnits: 2, placedUnits: 1 }])).toThrow(/no alive node has room for the 2 units of failed node a/);
  });
});
