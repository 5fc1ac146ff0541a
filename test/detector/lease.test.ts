// Job leases, the holder's side: whole lease on bind, renewals counted from
// the instant the heartbeat was sent (never shortening), lapse exactly at
// expiry; and the grantor's arithmetic (leaseSafeAfter, leaseMarginMs).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GridError } from '../../src/common/errors.js';
import { JobLeases, leaseMarginMs, leaseSafeAfter } from '../../src/detector/lease.js';

function invalid(f: () => unknown): GridError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(GridError);
    expect((err as GridError).kind).toBe('invalid-argument');
    return err as GridError;
  }
  throw new Error('did not throw');
}

describe('JobLeases', () => {
  it('bind gives a whole lease from now', () => {
    const l = new JobLeases(1000);
    expect(l.lengthMs).toBe(1000);
    expect(l.isBound('j')).toBe(false);
    expect(l.remainingMs('j', 0)).toBeNull();
    l.bind('j', 500);
    expect(l.isBound('j')).toBe(true);
    expect(l.nextExpiry()).toBe(1500);
    expect(l.remainingMs('j', 500)).toBe(1000);
    expect(l.remainingMs('j', 1200)).toBe(300);
    expect(l.remainingMs('j', 9999)).toBe(0);
    // A second bind is a fresh start from its own instant.
    l.bind('j', 800);
    expect(l.nextExpiry()).toBe(1800);
  });

  it('lapses exactly when now reaches the expiry, and unbinds', () => {
    const l = new JobLeases(1000);
    l.bind('j', 0);
    expect(l.lapse(999)).toEqual([]);
    expect(l.lapse(999.999)).toEqual([]);
    expect(l.isBound('j')).toBe(true);
    expect(l.lapse(1000)).toEqual(['j']);
    expect(l.isBound('j')).toBe(false);
    expect(l.lapse(1000)).toEqual([]);
    expect(l.lapse(1e9)).toEqual([]);
    expect(l.nextExpiry()).toBeNull();
  });

  it('renew extends from the sent instant', () => {
    const l = new JobLeases(1000);
    l.bind('j', 0);
    l.renew(['j'], 400); // sent at 400, answered later: counts from 400
    expect(l.nextExpiry()).toBe(1400);
    expect(l.remainingMs('j', 700)).toBe(700);
    expect(l.lapse(1399)).toEqual([]);
    expect(l.lapse(1400)).toEqual(['j']);
  });

  it('a renewal for a heartbeat sent before the current expiry minus a lease never shortens it', () => {
    const l = new JobLeases(1000);
    l.bind('j', 500); // until 1500
    l.renew(['j'], 100); // 1100 < 1500: ignored
    expect(l.nextExpiry()).toBe(1500);
    l.renew(['j'], 900); // until 1900
    l.renew(['j'], 600); // a late answer to an older heartbeat: 1600 < 1900
    expect(l.nextExpiry()).toBe(1900);
    expect(l.lapse(1899)).toEqual([]);
    expect(l.lapse(1900)).toEqual(['j']);
  });

  it('renew only extends bound jobs: it never binds one', () => {
    const l = new JobLeases(1000);
    l.bind('a', 0);
    l.renew(['a', 'b', 'c'], 200);
    expect(l.isBound('b')).toBe(false);
    expect(l.isBound('c')).toBe(false);
    expect(l.remainingMs('b', 200)).toBeNull();
    expect(l.nextExpiry()).toBe(1200);
    // A job unbound (or lapsed) is not brought back by a renewal either.
    l.unbind('a');
    l.renew(['a'], 300);
    expect(l.isBound('a')).toBe(false);
    expect(l.nextExpiry()).toBeNull();
    l.bind('d', 0);
    expect(l.lapse(1000)).toEqual(['d']);
    l.renew(['d'], 1000);
    expect(l.isBound('d')).toBe(false);
    expect(l.lapse(5000)).toEqual([]);
  });

  it('renew accepts any iterable, e.g. a Set or a generator', () => {
    const l = new JobLeases(100);
    l.bind('a', 0);
    l.bind('b', 0);
    l.renew(new Set(['a']), 50);
    function* names() { yield 'b'; }
    l.renew(names(), 70);
    expect(l.remainingMs('a', 50)).toBe(100);
    expect(l.remainingMs('b', 70)).toBe(100);
  });

  it('lapse returns exactly the jobs at or past expiry, sorted, and leaves the rest bound', () => {
    const l = new JobLeases(100);
    l.bind('zeta', 0); // 100
    l.bind('alpha', 20); // 120
    l.bind('mid', 50); // 150
    l.bind('beta', 10); // 110
    l.bind('late', 200); // 300
    expect(l.nextExpiry()).toBe(100);
    expect(l.lapse(120)).toEqual(['alpha', 'beta', 'zeta']);
    expect(['alpha', 'beta', 'zeta'].map((j) => l.isBound(j))).toEqual([false, false, false]);
    expect(l.isBound('mid')).toBe(true);
    expect(l.isBound('late')).toBe(true);
    expect(l.nextExpiry()).toBe(150);
    expect(l.lapse(120)).toEqual([]);
    expect(l.lapse(300)).toEqual(['late', 'mid']);
    expect(l.nextExpiry()).toBeNull();
  });

  it('nextExpiry is the minimum over bound jobs, whatever the order they were bound in', () => {
    const l = new JobLeases(1000);
    expect(l.nextExpiry()).toBeNull();
    l.bind('a', 300);
    l.bind('b', 100);
    l.bind('c', 200);
    expect(l.nextExpiry()).toBe(1100);
    l.unbind('b');
    expect(l.nextExpiry()).toBe(1200);
    l.renew(['c'], 400);
    expect(l.nextExpiry()).toBe(1300);
    l.unbind('a');
    l.unbind('c');
    l.unbind('never-bound'); // harmless
    expect(l.nextExpiry()).toBeNull();
  });

  it('setLength applies to later binds and renewals, not to leases already running', () => {
    const l = new JobLeases(1000);
    l.bind('old', 0); // 1000
    l.setLength(300);
    expect(l.lengthMs).toBe(300);
    expect(l.nextExpiry()).toBe(1000);
    l.bind('new', 100); // 400
    expect(l.nextExpiry()).toBe(400);
    l.renew(['new'], 200); // 500
    expect(l.remainingMs('new', 200)).toBe(300);
    l.renew(['old'], 600); // 900 < 1000: unchanged
    expect(l.remainingMs('old', 600)).toBe(400);
    l.setLength(5000);
    l.renew(['old'], 600); // 5600
    expect(l.remainingMs('old', 600)).toBe(5000);
    expect(l.lapse(1000)).toEqual(['new']);
  });

  it('rejects a zero, negative, NaN or infinite length as invalid-argument', () => {
    for (const bad of [0, -1, -0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(invalid(() => new JobLeases(bad)).message).toMatch(/lease length .* must be a positive number/);
    }
    const l = new JobLeases(100);
    for (const bad of [0, -100, Number.NaN]) invalid(() => l.setLength(bad));
    // A rejected setLength leaves the length as it was.
    expect(l.lengthMs).toBe(100);
    l.bind('j', 0);
    expect(l.nextExpiry()).toBe(100);
    // Small positive lengths are fine.
    expect(new JobLeases(0.5).lengthMs).toBe(0.5);
  });

  type Op =
    | { kind: 'bind'; job: string; dt: number }
    | { kind: 'renew'; jobs: string[]; dt: number; back: number }
    | { kind: 'unbind'; job: string; dt: number }
    | { kind: 'lapse'; dt: number };
  const job = fc.constantFrom('a', 'b', 'c', 'd');
  const dt = fc.nat({ max: 400 });
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('bind' as const), job, dt }),
    fc.record({ kind: fc.constant('renew' as const), jobs: fc.uniqueArray(job, { maxLength: 4 }), dt, back: fc.nat({ max: 600 }) }),
    fc.record({ kind: fc.constant('unbind' as const), job, dt }),
    fc.record({ kind: fc.constant('lapse' as const), dt }),
  );

  it('property: a job lapses exactly once now >= max(bind time, latest renewal sent while bound) + lease', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 500 }), fc.array(op, { maxLength: 60 }), (leaseMs, ops) => {
        const l = new JobLeases(leaseMs);
        // The reference: per bound job, its bind time and the latest sentAt among renewals naming it since.
        const bound = new Map<string, { boundAt: number; latestSent: number }>();
        const deadline = (j: string) => {
          const b = bound.get(j)!;
          return Math.max(b.boundAt, b.latestSent) + leaseMs;
        };
        let now = 0;
        for (const o of ops) {
          now += o.dt;
          switch (o.kind) {
            case 'bind':
              l.bind(o.job, now);
              bound.set(o.job, { boundAt: now, latestSent: Number.NEGATIVE_INFINITY });
              break;
            case 'renew': {
              const sentAt = now - o.back;
              l.renew(o.jobs, sentAt);
              for (const j of o.jobs) {
                const b = bound.get(j);
                if (b) b.latestSent = Math.max(b.latestSent, sentAt);
              }
              break;
            }
            case 'unbind':
              l.unbind(o.job);
              bound.delete(o.job);
              break;
            case 'lapse': {
              const expected = [...bound.keys()].filter((j) => now >= deadline(j)).sort();
              expect(l.lapse(now)).toEqual(expected);
              for (const j of expected) bound.delete(j);
              break;
            }
          }
          for (const j of ['a', 'b', 'c', 'd']) {
            expect(l.isBound(j)).toBe(bound.has(j));
            expect(l.remainingMs(j, now)).toBe(bound.has(j) ? Math.max(0, deadline(j) - now) : null);
          }
          const next = [...bound.keys()].map(deadline);
          expect(l.nextExpiry()).toBe(next.length === 0 ? null : Math.min(...next));
        }
        // Just before the last deadline nothing past it lapses; at it, all of them do.
        if (bound.size > 0) {
          const last = Math.max(...[...bound.keys()].map(deadline));
          const lateAt = Math.max(now, last);
          if (lateAt - 1 >= now) {
            const before = [...bound.keys()].filter((j) => deadline(j) <= lateAt - 1).sort();
            expect(l.lapse(lateAt - 1)).toEqual(before);
            for (const j of before) bound.delete(j);
            expect(bound.size).toBeGreaterThan(0); // the last one is still bound
          }
          expect(l.lapse(lateAt)).toEqual([...bound.keys()].sort());
        }
        expect(l.nextExpiry()).toBeNull();
      }),
      { numRuns: 300 },
    );
  });
});

describe('leaseSafeAfter', () => {
  it('is the grant instant plus the lease, the nested lease and the margin', () => {
    expect(leaseSafeAfter(1000, 3000, 2000, 500)).toBe(6500);
    expect(leaseSafeAfter(0, 1, 0, 0)).toBe(1);
    expect(leaseSafeAfter(12.5, 100, 50, 30)).toBe(192.5);
  });

  it('grows with each of its terms', () => {
    fc.assert(
      fc.property(fc.nat({ max: 1e9 }), fc.nat({ max: 1e6 }), fc.nat({ max: 1e6 }), fc.nat({ max: 1e6 }), (g, l, n, m) => {
        const base = leaseSafeAfter(g, l, n, m);
        expect(base).toBe(g + l + n + m);
        expect(leaseSafeAfter(g + 1, l, n, m)).toBe(base + 1);
        expect(leaseSafeAfter(g, l + 1, n, m)).toBe(base + 1);
        expect(leaseSafeAfter(g, l, n + 1, m)).toBe(base + 1);
        expect(leaseSafeAfter(g, l, n, m + 1)).toBe(base + 1);
      }),
    );
  });
});

describe('leaseMarginMs', () => {
  it('is 200 ms for short leases and a fifth of long ones', () => {
    expect(leaseMarginMs(1)).toBe(200);
    expect(leaseMarginMs(500)).toBe(200);
    expect(leaseMarginMs(1000)).toBe(200);
    expect(leaseMarginMs(1005)).toBe(201);
    expect(leaseMarginMs(3000)).toBe(600);
    expect(leaseMarginMs(10_000)).toBe(2000);
  });

  it('is at least 200 ms and a fifth of the lease (to the nearest ms), in whole ms', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000_000 }), (leaseMs) => {
        const m = leaseMarginMs(leaseMs);
        expect(Number.isInteger(m)).toBe(true);
        expect(m).toBeGreaterThanOrEqual(200);
        // Rounded to the nearest ms: never more than half a ms short of 20%.
        expect(m).toBeGreaterThanOrEqual(leaseMs * 0.2 - 0.5);
        expect(m).toBeLessThanOrEqual(Math.max(200, leaseMs * 0.2 + 0.5));
      }),
    );
  });
});
