// The grid's plan after losing a cluster: the lost units move together to
// one alive cluster, the whole job rolls back to the recovery line, and
// units whose pages the line keeps in another cluster's store are adopted
// from that store.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { planGridRecovery, type ClusterRestore, type GridRecoveryInput, type GridRecoveryPlan } from '../../src/grid/core/recovery-plan.js';

type Ok = Extract<GridRecoveryPlan, { ok: true }>;

const STORES = new Map([['A', '/s/A'], ['B', '/s/B'], ['C', '/s/C'], ['D', '/s/D']]);
const EPOCHS = { A: 5n, B: 7n, C: 9n };

function ok(plan: GridRecoveryPlan): Ok {
  if (!plan.ok) throw new Error(`expected a plan, got: ${plan.reason}`);
  return plan;
}

function notOk(plan: GridRecoveryPlan): string {
  if (plan.ok) throw new Error(`expected no plan, got target ${plan.target}`);
  return plan.reason;
}

/** a0, a1 in A; b0 in B; c0..c2 in C (inserted out of order); the line agrees. */
function base(over: Partial<GridRecoveryInput> = {}): GridRecoveryInput {
  const clusters = new Map([['c2', 'C'], ['a0', 'A'], ['b0', 'B'], ['c0', 'C'], ['a1', 'A'], ['c1', 'C']]);
  return {
    clusters,
    lost: new Set(['C']),
    line: { clusterEpochs: EPOCHS, unitClusters: Object.fromEntries(clusters) },
    free: new Map([['A', 5], ['B', 3]]),
    stores: STORES,
    ...over,
  };
}

const restore = (units: string[], epoch: bigint | null, adopt: ClusterRestore['adopt'] = []): ClusterRestore => ({ units, epoch, adopt });

describe('planGridRecovery: the target', () => {
  it('moves every unit of the lost cluster to one target and keeps the others where they are', () => {
    const input = base();
    const p = ok(planGridRecovery(input));
    expect(p.target).toBe('A');
    expect(p.moved).toEqual(['c0', 'c1', 'c2']);
    expect(Object.fromEntries(p.clusters)).toEqual({ a0: 'A', a1: 'A', b0: 'B', c0: 'A', c1: 'A', c2: 'A' });
    // The input is left alone.
    expect(Object.fromEntries(input.clusters)).toEqual({ a0: 'A', a1: 'A', b0: 'B', c0: 'C', c1: 'C', c2: 'C' });
  });

  it('picks the alive cluster with the most free room', () => {
    expect(ok(planGridRecovery(base({ free: new Map([['A', 3], ['B', 4]]) }))).target).toBe('B');
    expect(ok(planGridRecovery(base({ free: new Map([['A', 2], ['B', 3]]) }))).target).toBe('B');
  });

  it('breaks a tie in room by name', () => {
    expect(ok(planGridRecovery(base({ free: new Map([['B', 4], ['A', 4]]) }))).target).toBe('A');
    expect(ok(planGridRecovery(base({ free: new Map([['B', 3], ['A', 3]]) }))).target).toBe('A');
  });

  it('never picks a lost cluster, whatever room it reports', () => {
    const p = ok(planGridRecovery(base({ free: new Map([['C', 100], ['B', 3], ['A', 3]]) })));
    expect(p.target).toBe('A');
    expect(p.restores.has('C')).toBe(false);
  });

  it('fails naming the lost cluster and the count when no cluster has room for all of them', () => {
    const reason = notOk(planGridRecovery(base({ free: new Map([['A', 2], ['B', 2], ['C', 50]]) })));
    expect(reason).toMatch(/no alive cluster has room for the 3 units of lost cluster C \(the most room is 2 on [AB]\)/);
    expect(notOk(planGridRecovery(base({ free: new Map() })))).toMatch(/the 3 units of lost cluster C \(no cluster is alive\)/);
  });

  it('moves the units of several lost clusters together, or names them all', () => {
    const p = ok(planGridRecovery(base({ lost: new Set(['C', 'B']), free: new Map([['A', 4], ['D', 5]]) })));
    expect(p.target).toBe('D');
    expect(p.moved).toEqual(['b0', 'c0', 'c1', 'c2']);
    expect(Object.fromEntries(p.clusters)).toEqual({ a0: 'A', a1: 'A', b0: 'D', c0: 'D', c1: 'D', c2: 'D' });
    const reason = notOk(planGridRecovery(base({ lost: new Set(['C', 'B']), free: new Map([['A', 3], ['D', 3]]) })));
    expect(reason).toMatch(/the 4 units of lost cluster B, C/);
  });
});

describe('planGridRecovery: the restores', () => {
  it('with a line: every cluster restores its own units at its epoch, and the target adopts the moved ones', () => {
    const p = ok(planGridRecovery(base()));
    expect(p.restores).toEqual(new Map([
      ['A', restore(['a0', 'a1', 'c0', 'c1', 'c2'], 5n, [{ fromCluster: 'C', storeDir: '/s/C', epoch: 9n, unitIds: ['c0', 'c1', 'c2'] }])],
      // B lost nothing and moves nothing, but the whole job rolls back: it restores too.
      ['B', restore(['b0'], 7n)],
    ]));
  });

  it('without a line: every restore and every adoption starts anew (epoch null)', () => {
    const p = ok(planGridRecovery(base({ line: null })));
    expect(p.target).toBe('A');
    expect(p.restores).toEqual(new Map([
      ['A', restore(['a0', 'a1', 'c0', 'c1', 'c2'], null, [{ fromCluster: 'C', storeDir: '/s/C', epoch: null, unitIds: ['c0', 'c1', 'c2'] }])],
      ['B', restore(['b0'], null)],
    ]));
  });

  it('falls back to the current cluster for a unit the line does not name, and to null for a cluster not on it', () => {
    const clusters = new Map([['a0', 'A'], ['c0', 'C'], ['c1', 'C'], ['d0', 'D']]);
    const p = ok(planGridRecovery({
      clusters,
      lost: new Set(['C']),
      line: { clusterEpochs: EPOCHS, unitClusters: { a0: 'A', c0: 'C' } }, // c1 and d0 are not on the line; nor is D
      free: new Map([['A', 1], ['D', 2]]),
      stores: STORES,
    }));
    expect(p.target).toBe('D');
    expect(p.restores).toEqual(new Map([
      ['A', restore(['a0'], 5n)],
      ['D', restore(['c0', 'c1', 'd0'], null, [{ fromCluster: 'C', storeDir: '/s/C', epoch: 9n, unitIds: ['c0', 'c1'] }])],
    ]));
  });

  it('fails naming the cluster whose store is unknown', () => {
    const stores = new Map([['A', '/s/A'], ['B', '/s/B']]);
    expect(notOk(planGridRecovery(base({ stores })))).toMatch(/the store of cluster C \(unit c0's pages\) is unknown/);
    expect(notOk(planGridRecovery(base({ stores, line: null })))).toMatch(/store of cluster C/);
  });

  describe('a unit adopted after the line: x ran in A on the line, runs in B now', () => {
    const clusters = new Map([['a0', 'A'], ['b0', 'B'], ['x', 'B'], ['c0', 'C']]);
    const line = { clusterEpochs: EPOCHS, unitClusters: { a0: 'A', b0: 'B', x: 'A', c0: 'C' } };

    it('when B is lost, x is adopted from A (its pages at the line), b0 from B', () => {
      const p = ok(planGridRecovery({ clusters, lost: new Set(['B']), line, free: new Map([['A', 1], ['C', 3]]), stores: STORES }));
      expect(p.target).toBe('C');
      expect(p.moved).toEqual(['b0', 'x']);
      expect(p.restores).toEqual(new Map([
        ['A', restore(['a0'], 5n)],
        ['C', restore(['b0', 'c0', 'x'], 9n, [
          { fromCluster: 'B', storeDir: '/s/B', epoch: 7n, unitIds: ['b0'] },
          { fromCluster: 'A', storeDir: '/s/A', epoch: 5n, unitIds: ['x'] },
        ])],
      ]));
    });

    it('when B is lost and A takes its units, x is simply one of A\'s own again', () => {
      const p = ok(planGridRecovery({ clusters, lost: new Set(['B']), line, free: new Map([['A', 5], ['C', 3]]), stores: STORES }));
      expect(p.target).toBe('A');
      expect(p.restores).toEqual(new Map([
        ['A', restore(['a0', 'b0', 'x'], 5n, [{ fromCluster: 'B', storeDir: '/s/B', epoch: 7n, unitIds: ['b0'] }])],
        ['C', restore(['c0'], 9n)],
      ]));
    });

    it('when C is lost and B survives, B re-adopts x from A', () => {
      const p = ok(planGridRecovery({ clusters, lost: new Set(['C']), line, free: new Map([['A', 1], ['B', 1]]), stores: STORES }));
      expect(p.target).toBe('A');
      expect(p.moved).toEqual(['c0']);
      expect(p.restores).toEqual(new Map([
        ['A', restore(['a0', 'c0'], 5n, [{ fromCluster: 'C', storeDir: '/s/C', epoch: 9n, unitIds: ['c0'] }])],
        ['B', restore(['b0', 'x'], 7n, [{ fromCluster: 'A', storeDir: '/s/A', epoch: 5n, unitIds: ['x'] }])],
      ]));
    });

    it('without a line, x comes from B, where it is now', () => {
      const p = ok(planGridRecovery({ clusters, lost: new Set(['B']), line: null, free: new Map([['C', 3]]), stores: STORES }));
      expect(p.restores.get('C')).toEqual(restore(['b0', 'c0', 'x'], null, [{ fromCluster: 'B', storeDir: '/s/B', epoch: null, unitIds: ['b0', 'x'] }]));
    });

    it('fails when the line\'s source store is unknown, naming it', () => {
      const stores = new Map([['B', '/s/B'], ['C', '/s/C']]);
      const reason = notOk(planGridRecovery({ clusters, lost: new Set(['B']), line, free: new Map([['C', 3]]), stores }));
      expect(reason).toMatch(/the store of cluster A \(unit x's pages\) is unknown/);
    });
  });

  it('property: a consistent plan for random jobs', () => {
    const names = ['A', 'B', 'C', 'D'];
    const arb = fc.record({
      units: fc.array(fc.record({ now: fc.constantFrom(...names), onLine: fc.option(fc.constantFrom(...names), { nil: undefined }) }), { maxLength: 12 }),
      lost: fc.subarray(names, { minLength: 1, maxLength: 2 }),
      free: fc.dictionary(fc.constantFrom(...names), fc.nat({ max: 8 })),
      epochs: fc.dictionary(fc.constantFrom(...names), fc.bigInt({ min: 1n, max: 100n })),
      withLine: fc.boolean(),
    });
    fc.assert(
      fc.property(arb, ({ units, lost, free, epochs, withLine }) => {
        const clusters = new Map(units.map((u, i) => [`u${String(i).padStart(2, '0')}`, u.now]));
        const unitClusters: Record<string, string> = {};
        units.forEach((u, i) => { if (u.onLine) unitClusters[`u${String(i).padStart(2, '0')}`] = u.onLine; });
        const input: GridRecoveryInput = {
          clusters,
          lost: new Set(lost),
          line: withLine ? { clusterEpochs: epochs, unitClusters } : null,
          free: new Map(Object.entries(free)),
          stores: STORES,
        };
        const plan = planGridRecovery(input);
        const moved = [...clusters].filter(([, c]) => lost.includes(c)).map(([u]) => u).sort();
        const fits = Object.entries(free).filter(([c, r]) => !lost.includes(c) && r >= moved.length);
        if (!plan.ok) {
          expect(fits).toEqual([]);
          expect(plan.reason).toContain(`the ${moved.length} units of lost cluster ${[...lost].sort().join(', ')}`);
          return;
        }
        expect(lost).not.toContain(plan.target);
        expect(free[plan.target]).toBeGreaterThanOrEqual(moved.length);
        expect(Math.max(...fits.map(([, r]) => r))).toBe(free[plan.target]);
        expect(plan.moved).toEqual(moved);
        for (const [u, c] of clusters) expect(plan.clusters.get(u)).toBe(lost.includes(c) ? plan.target : c);
        expect(plan.clusters.size).toBe(clusters.size);
        // Each unit is in exactly its cluster's restore; adoptions are of that cluster's units, from elsewhere.
        const seen: string[] = [];
        for (const [c, r] of plan.restores) {
          expect(lost).not.toContain(c);
          for (const u of r.units) expect(plan.clusters.get(u)).toBe(c);
          seen.push(...r.units);
          const sources = r.adopt.map((a) => a.fromCluster);
          expect(new Set(sources).size).toBe(sources.length);
          for (const a of r.adopt) {
            expect(a.fromCluster).not.toBe(c);
            expect(a.storeDir).toBe(STORES.get(a.fromCluster));
            expect(a.unitIds).toEqual([...a.unitIds].sort());
            for (const u of a.unitIds) {
              expect(r.units).toContain(u);
              const source = withLine ? (unitClusters[u] ?? clusters.get(u)) : clusters.get(u);
              expect(a.fromCluster).toBe(source);
            }
            expect(a.epoch).toBe(withLine ? (epochs[a.fromCluster] ?? null) : null);
          }
          const own = r.units.filter((u) => !r.adopt.some((a) => a.unitIds.includes(u)));
          if (own.length > 0) expect(r.epoch).toBe(withLine ? (epochs[c] ?? null) : null);
          else expect(r.epoch).toBeNull();
        }
        expect(seen.sort()).toEqual([...clusters.keys()].sort());
      }),
      { numRuns: 300 },
    );
  });
});
