// The grantor's lease arithmetic (leaseSafeAfter, leaseMarginMs); the
// holders' side lives in the cores (agent: P-invariants, cluster: C6).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { leaseMarginMs, leaseSafeAfter } from '../../src/detector/lease.js';

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
