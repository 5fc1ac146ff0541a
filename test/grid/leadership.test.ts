import { describe, expect, it } from 'vitest';
import { Leadership } from '../../src/grid/core/leadership.js';

// grid/core/leadership.ts: who may decide, L1..L3, exact outputs.

describe('Leadership', () => {
  const config = { leaseMs: 2000, marginMs: 100 };

  it('leads from its election until its last acknowledged keepalive\'s send + lease − margin (L1)', () => {
    const l = new Leadership(config);
    expect(l.step({ kind: 'elected', term: 7n, renewedSentAtMs: 1000 }, 1010)).toEqual([{ kind: 'lead', term: 7n }]);
    expect(l.mayDecide(2899)).toBe(true);
    expect(l.mayDecide(2900)).toBe(false);
    expect(l.nextDeadline()).toBe(2900);
    expect(l.step({ kind: 'keptAlive', sentAtMs: 1600 }, 1620)).toEqual([]);
    expect(l.nextDeadline()).toBe(3500);
    // An older acknowledgement arriving late does not move validity back.
    expect(l.step({ kind: 'keptAlive', sentAtMs: 1300 }, 1700)).toEqual([]);
    expect(l.nextDeadline()).toBe(3500);
    l.checkInvariants();
    expect(l.step({ kind: 'tick' }, 3500)).toEqual([{ kind: 'stepDown', term: 7n, reason: 'no keepalive acknowledged since 1600 ms: the lease may have expired' }]);
    expect(l.mayDecide(3500)).toBe(false);
    expect(l.nextDeadline()).toBeNull();
  });

  it('steps down when the lease or its key is lost, and leads again only with a newer term (L2, L3)', () => {
    const l = new Leadership(config);
    l.step({ kind: 'elected', term: 3n, renewedSentAtMs: 0 }, 5);
    expect(l.step({ kind: 'lost', reason: 'a guarded write found another leader' }, 10)).toEqual([{ kind: 'stepDown', term: 3n, reason: 'a guarded write found another leader' }]);
    expect(l.step({ kind: 'lost', reason: 'again' }, 11)).toEqual([]);
    expect(() => l.step({ kind: 'elected', term: 3n, renewedSentAtMs: 11 }, 12)).toThrow(/L2/);
    expect(l.step({ kind: 'elected', term: 9n, renewedSentAtMs: 20 }, 25)).toEqual([{ kind: 'lead', term: 9n }]);
  });

  it('an election whose lease is already too old to lead on is no reign', () => {
    const l = new Leadership(config);
    expect(l.step({ kind: 'elected', term: 2n, renewedSentAtMs: 0 }, 1900)).toEqual([{ kind: 'stepDown', term: 2n, reason: 'elected with a lease already expired' }]);
    expect(l.mayDecide(1900)).toBe(false);
  });

  it('refuses a margin that leaves no lease', () => {
    expect(() => new Leadership({ leaseMs: 1000, marginMs: 1000 })).toThrow(/marginMs/);
  });
});
