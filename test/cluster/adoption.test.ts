// Adopting a lost cluster's units: each foreign node's units (and the parts
// it held) go whole to ONE local node, largest group first, to the node with
// the most free room; without an epoch, units are placed one by one.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GridError, type GridErrorKind } from '../../src/common/errors.js';
import { planAdoption, type ForeignEpochLayout } from '../../src/cluster/core/adoption.js';
import { placeUnits, type NodeCapacity } from '../../src/cluster/core/placement.js';

const node = (nodeId: string, capacityUnits: number, placedUnits = 0): NodeCapacity => ({ nodeId, capacityUnits, placedUnits });

function thrown(kind: GridErrorKind, f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(GridError);
    expect((err as GridError).kind).toBe(kind);
    return (err as GridError).message;
  }
  throw new Error('did not throw');
}

describe('planAdoption with the lost cluster epoch layout', () => {
  it('puts all units of one foreign node on one local node', () => {
    const layout: ForeignEpochLayout = { placement: { u0: 'x', u1: 'x', u2: 'x', u3: 'y' }, partOwners: {} };
    const p = planAdoption(['u3', 'u0', 'u2', 'u1'], layout, [node('a', 4), node('b', 3)]);
    expect(p.placement).toEqual(new Map([['u0', 'a'], ['u1', 'a'], ['u2', 'a'], ['u3', 'b']]));
    expect(p.holders).toEqual(new Map([['x', 'a'], ['y', 'b']]));
  });

  it('places groups largest first, each on the node with the most free room then', () => {
    const layout: ForeignEpochLayout = {
      placement: { p0: 'p', p1: 'p', p2: 'p', q0: 'q', r0: 'r', r1: 'r' },
      partOwners: {},
    };
    // p (3) → n2 (5 → 2); r (2) → n1 (3 → 1); q (1) → n2 (2 → 1).
    const p = planAdoption(['q0', 'r0', 'p0', 'r1', 'p1', 'p2'], layout, [node('n1', 3), node('n2', 5)]);
    expect(Object.fromEntries(p.placement)).toEqual({ p0: 'n2', p1: 'n2', p2: 'n2', r0: 'n1', r1: 'n1', q0: 'n2' });
    expect(p.holders).toEqual(new Map([['p', 'n2'], ['r', 'n1'], ['q', 'n2']]));
  });

  it('largest first fits a big group that smallest first would not', () => {
    // 'a' (1 unit) sorts before 'z' (3) by name; only largest-first fits both.
    const layout: ForeignEpochLayout = { placement: { a0: 'a', z0: 'z', z1: 'z', z2: 'z' }, partOwners: {} };
    const p = planAdoption(['a0', 'z0', 'z1', 'z2'], layout, [node('big', 3), node('small', 1)]);
    expect(Object.fromEntries(p.placement)).toEqual({ a0: 'small', z0: 'big', z1: 'big', z2: 'big' });
  });

  it('breaks ties by name: among equal groups, and among nodes with equal room', () => {
    const layout: ForeignEpochLayout = { placement: { a: 'g2', b: 'g2', c: 'g1', d: 'g1' }, partOwners: {} };
    // g1 goes first (same size, smaller name) and takes n1, the node with the most room.
    const p = planAdoption(['a', 'b', 'c', 'd'], layout, [node('n2', 2), node('n1', 3)]);
    expect(p.holders).toEqual(new Map([['g1', 'n1'], ['g2', 'n2']]));
    const q = planAdoption(['u'], { placement: { u: 'x' }, partOwners: {} }, [node('nb', 2), node('na', 2)]);
    expect(q.placement.get('u')).toBe('na');
  });

  it('counts room as capacity minus what is already placed', () => {
    const layout: ForeignEpochLayout = { placement: { u0: 'x', u1: 'x', v0: 'y' }, partOwners: {} };
    // a is large but nearly full (room 1); b has room 3. x (2) → b; then a and b have 1 each: y → a by name.
    const p = planAdoption(['u0', 'u1', 'v0'], layout, [node('a', 10, 9), node('b', 3, 0), node('over', 1, 4)]);
    expect(Object.fromEntries(p.placement)).toEqual({ u0: 'b', u1: 'b', v0: 'a' });
  });

  it('maps the writers whose parts a foreign node held to the same local node', () => {
    const layout: ForeignEpochLayout = {
      placement: { u0: 'x', u1: 'x', u2: 'y' },
      // w's parts were taken over by x, v's by y; z's by a node none of whose units are adopted.
      partOwners: { x: 'x', w: 'x', v: 'y', y: 'y', z: 'gone' },
    };
    const p = planAdoption(['u0', 'u1', 'u2'], layout, [node('a', 2), node('b', 2)]);
    expect(Object.fromEntries(p.placement)).toEqual({ u0: 'a', u1: 'a', u2: 'b' });
    expect(p.holders).toEqual(new Map([['x', 'a'], ['w', 'a'], ['y', 'b'], ['v', 'b']]));
    expect(p.holders.has('z')).toBe(false);
    expect(p.holders.has('gone')).toBe(false);
  });

  it('throws resource-exhausted when a group fits on no single node, even if the total room would do', () => {
    const layout: ForeignEpochLayout = { placement: { u0: 'x', u1: 'x', u2: 'x' }, partOwners: {} };
    const msg = thrown('resource-exhausted', () => planAdoption(['u0', 'u1', 'u2'], layout, [node('a', 2), node('b', 2)]));
    expect(msg).toMatch(/no alive node has room for the units of x \(3 units; the most room on one node is 2\)/);
    thrown('resource-exhausted', () => planAdoption(['u0'], { placement: { u0: 'x' }, partOwners: {} }, []));
    thrown('resource-exhausted', () => planAdoption(['u0'], { placement: { u0: 'x' }, partOwners: {} }, [node('full', 2, 2)]));
  });

  it('throws failed-precondition for a unit missing from the layout', () => {
    const layout: ForeignEpochLayout = { placement: { u0: 'x' }, partOwners: {} };
    const msg = thrown('failed-precondition', () => planAdoption(['u0', 'ghost'], layout, [node('a', 10)]));
    expect(msg).toMatch(/unit ghost is not in the lost cluster's epoch/);
  });

  it('adopts nothing for no units, and leaves its input alone', () => {
    const nodes = [node('a', 2, 1)];
    const layout: ForeignEpochLayout = { placement: { u0: 'x' }, partOwners: { w: 'x' } };
    const p = planAdoption([], layout, nodes);
    expect(p.placement.size).toBe(0);
    expect(p.holders.size).toBe(0);
    planAdoption(['u0'], layout, nodes);
    expect(nodes).toEqual([node('a', 2, 1)]);
    expect(layout).toEqual({ placement: { u0: 'x' }, partOwners: { w: 'x' } });
  });

  it('property: groups stay whole, no node exceeds its room, holders follow their groups', () => {
    const arb = fc.record({
      // foreign node → number of its units adopted
      groups: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 6 }),
      nodes: fc.array(fc.tuple(fc.nat({ max: 10 }), fc.nat({ max: 10 })), { minLength: 0, maxLength: 5 }),
      // extra writers, each held by some foreign node (by index, possibly out of range: a node with no units)
      writers: fc.array(fc.nat({ max: 8 }), { maxLength: 5 }),
    });
    fc.assert(
      fc.property(arb, ({ groups, nodes, writers }) => {
        const placement: Record<string, string> = {};
        const unitIds: string[] = [];
        groups.forEach((n, g) => {
          for (let i = 0; i < n; i++) {
            placement[`f${g}-u${i}`] = `f${g}`;
            unitIds.push(`f${g}-u${i}`);
          }
        });
        const partOwners: Record<string, string> = {};
        writers.forEach((h, i) => (partOwners[`w${i}`] = `f${h}`));
        const local = nodes.map(([cap, placed], i) => node(`n${i}`, cap, placed));
        const room = new Map(local.map((n) => [n.nodeId, n.capacityUnits - n.placedUnits]));
        const maxRoom = Math.max(0, ...room.values());
        const total = groups.reduce((a, n) => a + n, 0);
        let plan;
        try {
          plan = planAdoption(unitIds, { placement, partOwners }, local);
        } catch (err) {
          expect(err).toBeInstanceOf(GridError);
          expect((err as GridError).kind).toBe('resource-exhausted');
          // It gives up only when it must, or when the groups do not all fit on the roomiest node.
          expect(groups.some((n) => n > maxRoom) || total > maxRoom).toBe(true);
          return;
        }
        expect(groups.every((n) => n <= maxRoom)).toBe(true);
        expect([...plan.placement.keys()].sort()).toEqual([...unitIds].sort());
        const used = new Map<string, number>();
        for (const [u, n] of plan.placement) {
          expect(room.has(n)).toBe(true);
          used.set(n, (used.get(n) ?? 0) + 1);
          expect(plan.holders.get(placement[u]!)).toBe(n);
        }
        for (const [n, k] of used) expect(k).toBeLessThanOrEqual(room.get(n)!);
        for (const [w, h] of Object.entries(partOwners)) {
          if (groups[Number(h.slice(1))] !== undefined) expect(plan.holders.get(w)).toBe(plan.holders.get(h));
          else expect(plan.holders.has(w)).toBe(false);
        }
        expect(plan.holders.size).toBe(groups.length + Object.values(partOwners).filter((h) => groups[Number(h.slice(1))] !== undefined).length);
      }),
      { numRuns: 300 },
    );
  });
});

describe('planAdoption without an epoch', () => {
  it('places units one by one on the node with the most room (ties by name), with no holders', () => {
    const nodes = [node('a', 2), node('b', 5, 2), node('c', 1)];
    const units = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5'];
    const p = planAdoption(units, null, nodes);
    expect(Object.fromEntries(p.placement)).toEqual({ u0: 'b', u1: 'a', u2: 'b', u3: 'a', u4: 'b', u5: 'c' });
    expect(p.holders.size).toBe(0);
    // The same as a fresh placement.
    expect(p.placement).toEqual(placeUnits(units, nodes));
  });

  it('needs no layout entry for the units, and throws resource-exhausted when they do not fit', () => {
    const msg = thrown('resource-exhausted', () => planAdoption(['u0', 'u1', 'u2'], null, [node('a', 1), node('b', 1)]));
    expect(msg).toMatch(/no alive node has room for unit u2 \(1 units; the most room on one node is 0\)/);
  });
});
