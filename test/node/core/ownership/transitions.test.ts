import { describe, expect, it } from 'vitest';
import { cluster, EMPTY, msg } from './helpers.js';

// Exact outputs of the ownership core's transitions (docs/ownership.md).
// Page p is managed by n(p mod 3 + 1): p0 by n1, p1 by n2, p2 by n3.

describe('ownership core: reads and writes', () => {
  it('read miss: requester -> manager -> owner sends a copy; the reader installs it shared and tells the manager (K2)', () => {
    const c = cluster({ 0: 'n3', 1: 'n1', 2: 'n1' });
    const [n1, n2, n3] = ['n1', 'n2', 'n3'].map((id) => c.get(id)!);
    expect(n2!.step({ kind: 'read', reqId: 7, page: 0 }, 1)).toEqual({ ...EMPTY, send: [{ to: 'n1', msg: { from: 'n2', epoch: 1, body: { kind: 'request', page: 0, reqId: 1, want: 'read' } } }] });
    expect(n1!.step(msg('n2', { kind: 'request', page: 0, reqId: 1, want: 'read' }), 2)).toEqual({
      ...EMPTY, send: [{ to: 'n3', msg: { from: 'n1', epoch: 1, body: { kind: 'forward', page: 0, grant: 1, reqId: 1, requester: 'n2', want: 'read', dest: 'n2', exclusive: false } } }],
    });
    expect(n3!.step(msg('n1', { kind: 'forward', page: 0, grant: 1, reqId: 1, requester: 'n2', want: 'read', dest: 'n2', exclusive: false }), 3)).toEqual({
      ...EMPTY, send: [{ to: 'n2', msg: { from: 'n3', epoch: 1, body: { kind: 'copy', page: 0, grant: 1, reqId: 1, version: 0, data: 'p0:' } } }],
    });
    expect(n3!.view(0).state).toBe('owner-shared');
    expect(n2!.step(msg('n3', { kind: 'copy', page: 0, grant: 1, reqId: 1, version: 0, data: 'p0:' }), 4)).toEqual({
      send: [{ to: 'n1', msg: { from: 'n2', epoch: 1, body: { kind: 'done', page: 0, grant: 1 } } }],
      reply: [{ reqId: 7, kind: 'read', page: 0, version: 0, data: 'p0:' }], report: [],
    });
    expect(n2!.view(0)).toEqual({ state: 'shared', version: 0, data: 'p0:' });
    expect(n1!.step(msg('n2', { kind: 'done', page: 0, grant: 1 }), 5)).toEqual(EMPTY);
    expect(n1!.managerEntry(0)).toEqual({ owner: 'n3', copyset: ['n2'], busy: false, queued: 0 });
    for (const n of c.values()) n.checkInvariants();
  });

  it('write miss: the manager invalidates every copy first, then the owner hands the page over and keeps it until acked', () => {
    const c = cluster({ 0: 'n3', 1: 'n1', 2: 'n1' });
    const [n1, n2, n3] = ['n1', 'n2', 'n3'].map((id) => c.get(id)!);
    // n2 holds p0 shared (as above).
    n2!.step({ kind: 'read', reqId: 7, page: 0 }, 1);
    n1!.step(msg('n2', { kind: 'request', page: 0, reqId: 1, want: 'read' }), 1);
    n3!.step(msg('n1', { kind: 'forward', page: 0, grant: 1, reqId: 1, requester: 'n2', want: 'read', dest: 'n2', exclusive: false }), 1);
    n2!.step(msg('n3', { kind: 'copy', page: 0, grant: 1, reqId: 1, version: 0, data: 'p0:' }), 1);
    n1!.step(msg('n2', { kind: 'done', page: 0, grant: 1 }), 1);
    // n1 (also p0's manager) writes p0: its request is handled inside the step; the only output is n2's invalidation.
    expect(n1!.step({ kind: 'write', reqId: 9, ops: [{ page: 0, op: 'x' }] }, 2)).toEqual({
      ...EMPTY, send: [{ to: 'n2', msg: { from: 'n1', epoch: 1, body: { kind: 'invalidate', page: 0, grant: 2 } } }],
    });
    expect(n2!.step(msg('n1', { kind: 'invalidate', page: 0, grant: 2 }), 3)).toEqual({
      ...EMPTY, send: [{ to: 'n1', msg: { from: 'n2', epoch: 1, body: { kind: 'invalidated', page: 0, grant: 2 } } }],
    });
    expect(n2!.view(0).state).toBe('invalid');
    expect(n1!.step(msg('n2', { kind: 'invalidated', page: 0, grant: 2 }), 4)).toEqual({
      ...EMPTY, send: [{ to: 'n3', msg: { from: 'n1', epoch: 1, body: { kind: 'forward', page: 0, grant: 2, reqId: 1, requester: 'n1', want: 'write', dest: 'n1', exclusive: true } } }],
    });
    expect(n3!.step(msg('n1', { kind: 'forward', page: 0, grant: 2, reqId: 1, requester: 'n1', want: 'write', dest: 'n1', exclusive: true }), 5)).toEqual({
      ...EMPTY, send: [{ to: 'n1', msg: { from: 'n3', epoch: 1, body: { kind: 'transfer', page: 0, grant: 2, reqId: 1, version: 0, data: 'p0:', exclusive: true } } }],
    });
    expect(n3!.view(0).state).toBe('invalid');
    expect(n3!.handoffs()).toMatchObject([{ page: 0, to: 'n1', grant: 2, version: 0, data: 'p0:' }]);
    expect(n3!.nextDeadline()).toBe(15);
    expect(n1!.step(msg('n3', { kind: 'transfer', page: 0, grant: 2, reqId: 1, version: 0, data: 'p0:', exclusive: true }), 6)).toEqual({
      send: [{ to: 'n3', msg: { from: 'n1', epoch: 1, body: { kind: 'transferAck', page: 0, grant: 2 } } }],
      reply: [{ reqId: 9, kind: 'written', versions: [{ page: 0, version: 1 }] }], report: [],
    });
    expect(n1!.view(0)).toEqual({ state: 'owner-exclusive', version: 1, data: 'p0:x' });
    expect(n1!.managerEntry(0)).toEqual({ owner: 'n1', copyset: [], busy: false, queued: 0 });
    expect(n3!.step(msg('n1', { kind: 'transferAck', page: 0, grant: 2 }), 7)).toEqual(EMPTY);
    expect(n3!.handoffs()).toEqual([]);
    for (const n of c.values()) n.checkInvariants();
  });

  it('upgrade from owner-shared: the copies are invalidated, then the manager grants the owner, which applies', () => {
    const c = cluster({ 0: 'n3', 1: 'n1', 2: 'n1' });
    const [n1, n2, n3] = ['n1', 'n2', 'n3'].map((id) => c.get(id)!);
    n2!.step({ kind: 'read', reqId: 7, page: 0 }, 1);
    n1!.step(msg('n2', { kind: 'request', page: 0, reqId: 1, want: 'read' }), 1);
    n3!.step(msg('n1', { kind: 'forward', page: 0, grant: 1, reqId: 1, requester: 'n2', want: 'read', dest: 'n2', exclusive: false }), 1);
    n2!.step(msg('n3', { kind: 'copy', page: 0, grant: 1, reqId: 1, version: 0, data: 'p0:' }), 1);
    n1!.step(msg('n2', { kind: 'done', page: 0, grant: 1 }), 1);
    expect(n3!.step({ kind: 'write', reqId: 4, ops: [{ page: 0, op: 'y' }] }, 2)).toEqual({
      ...EMPTY, send: [{ to: 'n1', msg: { from: 'n3', epoch: 1, body: { kind: 'request', page: 0, reqId: 1, want: 'write' } } }],
    });
    expect(n1!.step(msg('n3', { kind: 'request', page: 0, reqId: 1, want: 'write' }), 3).send.map((s) => [s.to, s.msg.body.kind])).toEqual([['n2', 'invalidate']]);
    n2!.step(msg('n1', { kind: 'invalidate', page: 0, grant: 2 }), 4);
    expect(n1!.step(msg('n2', { kind: 'invalidated', page: 0, grant: 2 }), 5)).toEqual({
      ...EMPTY, send: [{ to: 'n3', msg: { from: 'n1', epoch: 1, body: { kind: 'grant', page: 0, grant: 2, reqId: 1, want: 'write' } } }],
    });
    expect(n3!.step(msg('n1', { kind: 'grant', page: 0, grant: 2, reqId: 1, want: 'write' }), 6)).toEqual({
      send: [{ to: 'n1', msg: { from: 'n3', epoch: 1, body: { kind: 'done', page: 0, grant: 2 } } }],
      reply: [{ reqId: 4, kind: 'written', versions: [{ page: 0, version: 1 }] }], report: [],
    });
    expect(n3!.view(0)).toEqual({ state: 'owner-exclusive', version: 1, data: 'p0:y' });
  });

  it('concurrent grabs are serialized by the manager: the second starts only after the first is done', () => {
    // p1 is managed by n2 and owned by n3; n1 and n2 grab it at once.
    const c = cluster({ 0: 'n1', 1: 'n3', 2: 'n1' });
    const n2 = c.get('n2')!;
    const first = n2.step(msg('n1', { kind: 'request', page: 1, reqId: 1, want: 'write' }), 1);
    expect(first.send).toEqual([{ to: 'n3', msg: { from: 'n2', epoch: 1, body: { kind: 'forward', page: 1, grant: 1, reqId: 1, requester: 'n1', want: 'write', dest: 'n1', exclusive: true } } }]);
    // n2 itself grabs p1 too: queued behind n1's, nothing sent.
    expect(n2.step({ kind: 'write', reqId: 5, ops: [{ page: 1, op: 'z' }] }, 2)).toEqual(EMPTY);
    expect(n2.managerEntry(1)).toEqual({ owner: 'n3', copyset: [], busy: true, queued: 1 });
    // n1 confirms: now n2's own request starts, forwarded to the new owner n1.
    expect(n2.step(msg('n1', { kind: 'done', page: 1, grant: 1 }), 3)).toEqual({
      ...EMPTY, send: [{ to: 'n1', msg: { from: 'n2', epoch: 1, body: { kind: 'forward', page: 1, grant: 2, reqId: 1, requester: 'n2', want: 'write', dest: 'n2', exclusive: true } } }],
    });
  });

  it('a batch takes its pages in ascending order and applies all at once (deadlock freedom)', () => {
    const c = cluster({ 0: 'n3', 1: 'n3', 2: 'n2' });
    const n2 = c.get('n2')!;
    // Pages 2 (own) and 0 (n3's): the request for 0 goes first; p2 is not pinned before p0 is held.
    expect(n2.step({ kind: 'write', reqId: 3, ops: [{ page: 2, op: 'b' }, { page: 0, op: 'a' }] }, 1)).toEqual({
      ...EMPTY, send: [{ to: 'n1', msg: { from: 'n2', epoch: 1, body: { kind: 'request', page: 0, reqId: 1, want: 'write' } } }],
    });
    expect(n2.describeOp(3)).toBe('write p0:invalid/write-sent p2:owner-exclusive');
    expect(n2.step(msg('n3', { kind: 'transfer', page: 0, grant: 1, reqId: 1, version: 4, data: 'p0:', exclusive: true }), 2)).toEqual({
      send: [
        { to: 'n3', msg: { from: 'n2', epoch: 1, body: { kind: 'transferAck', page: 0, grant: 1 } } },
        { to: 'n1', msg: { from: 'n2', epoch: 1, body: { kind: 'done', page: 0, grant: 1 } } },
      ],
      reply: [{ reqId: 3, kind: 'written', versions: [{ page: 0, version: 5 }, { page: 2, version: 1 }] }], report: [],
    });
    expect([n2.view(0).data, n2.view(2).data]).toEqual(['p0:a', 'p2:b']);
  });

  it('a forward for a page a batch pins waits until the batch applies', () => {
    const c = cluster({ 0: 'n2', 1: 'n3', 2: 'n1' });
    const n2 = c.get('n2')!;
    n2.step({ kind: 'write', reqId: 3, ops: [{ page: 0, op: 'a' }, { page: 1, op: 'b' }] }, 1); // pins p0, asks for p1
    expect(n2.describeOp(3)).toBe('write p0:owner-exclusive/pin3 p1:invalid/write-sent');
    expect(n2.step(msg('n1', { kind: 'forward', page: 0, grant: 1, reqId: 1, requester: 'n3', want: 'write', dest: 'n3', exclusive: true }), 2)).toEqual(EMPTY);
    const out = n2.step(msg('n3', { kind: 'transfer', page: 1, grant: 1, reqId: 1, version: 0, data: 'p1:', exclusive: true }), 3);
    expect(out.reply).toEqual([{ reqId: 3, kind: 'written', versions: [{ page: 0, version: 1 }, { page: 1, version: 1 }] }]);
    // Then the deferred forward is served: p0 goes to n3 with the batch's write in it.
    expect(out.send.map((s) => s.msg.body)).toContainEqual({ kind: 'transfer', page: 0, grant: 1, reqId: 1, version: 1, data: 'p0:a', exclusive: true });
  });
});
