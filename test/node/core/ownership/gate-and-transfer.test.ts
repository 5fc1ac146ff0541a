import { describe, expect, it } from 'vitest';
import { cluster, EMPTY, msg } from './helpers.js';

// The II B gate (freeze, drain, cut, thaw) and the sender's duty to keep a
// page until it is acknowledged (docs/ownership.md). p0 is managed by n1.

describe('ownership core: the gate of a checkpoint round', () => {
  it('a frozen manager starts nothing: a request is told held; the node drains, saves what it owns at the cut, and starts it at the thaw', () => {
    const c = cluster({ 0: 'n1', 1: 'n2', 2: 'n1' });
    const n1 = c.get('n1')!;
    expect(n1.step({ kind: 'freeze', epoch: 1, round: 1 }, 1)).toEqual({ ...EMPTY, report: [{ kind: 'drained', epoch: 1, round: 1 }] });
    expect(n1.step(msg('n3', { kind: 'request', page: 0, reqId: 4, want: 'write' }), 2)).toEqual({
      ...EMPTY, send: [{ to: 'n3', msg: { from: 'n1', epoch: 1, body: { kind: 'held', page: 0, reqId: 4 } } }],
    });
    // Evictions and unit ops start no protocol action behind the gate.
    expect(n1.step({ kind: 'evict', page: 2, to: 'n2' }, 3)).toEqual(EMPTY);
    expect(n1.step({ kind: 'write', reqId: 8, ops: [{ page: 1, op: 'q' }] }, 3)).toEqual(EMPTY);
    expect(n1.step({ kind: 'cut', epoch: 1, round: 1 }, 4)).toEqual({
      ...EMPTY, report: [{ kind: 'saved', epoch: 1, round: 1, pages: [{ page: 0, version: 0, data: 'p0:' }, { page: 2, version: 0, data: 'p2:' }] }],
    });
    const thawed = n1.step({ kind: 'thaw', epoch: 1, round: 1 }, 5);
    expect(thawed.send.map((s) => [s.to, s.msg.body.kind, s.msg.body.page])).toEqual([['n2', 'request', 1], ['n3', 'transfer', 0]]);
    n1.checkInvariants();
  });

  it('drain: a node that handed a page over before the freeze reports drained only once the receiver acknowledged it', () => {
    const c = cluster({ 0: 'n3', 1: 'n2', 2: 'n1' });
    const n3 = c.get('n3')!;
    n3.step(msg('n1', { kind: 'forward', page: 0, grant: 1, reqId: 1, requester: 'n2', want: 'write', dest: 'n2', exclusive: true }), 1);
    expect(n3.step({ kind: 'freeze', epoch: 1, round: 1 }, 2)).toEqual(EMPTY);
    expect(n3.inFlight()).toEqual({ managing: 0, handoffs: 1, pins: 0, requests: 0, held: 0 });
    expect(n3.step({ kind: 'cut', epoch: 1, round: 1 }, 3)).toEqual(EMPTY);
    // The ack ends the drain; the cut already came, so the save follows at once — without page 0, now the receiver's.
    expect(n3.step(msg('n2', { kind: 'transferAck', page: 0, grant: 1 }), 4)).toEqual({
      ...EMPTY, report: [{ kind: 'drained', epoch: 1, round: 1 }, { kind: 'saved', epoch: 1, round: 1, pages: [] }],
    });
  });

  it('a forward for a page pinned by a batch behind the gate is refused back, and the manager holds the request again', () => {
    const c = cluster({ 0: 'n2', 1: 'n3', 2: 'n1' });
    const [n1, n2, n3] = ['n1', 'n2', 'n3'].map((id) => c.get(id)!);
    // n2's batch pins p0 and asks p2's manager n3, which is frozen: held.
    expect(n2!.step({ kind: 'write', reqId: 3, ops: [{ page: 0, op: 'a' }, { page: 2, op: 'b' }] }, 1).send.map((s) => [s.to, s.msg.body.kind])).toEqual([['n3', 'request']]);
    n3!.step({ kind: 'freeze', epoch: 1, round: 1 }, 1);
    expect(n3!.step(msg('n2', { kind: 'request', page: 2, reqId: 1, want: 'write' }), 2).send.map((s) => [s.to, s.msg.body.kind])).toEqual([['n2', 'held']]);
    n2!.step(msg('n3', { kind: 'held', page: 2, reqId: 1 }), 3);
    // Meanwhile p0's manager n1 started n3's grab of p0 before it froze.
    n1!.step(msg('n3', { kind: 'request', page: 0, reqId: 9, want: 'write' }), 3);
    // n2 holds a pin, but nothing it started is in flight: drained.
    expect(n2!.step({ kind: 'freeze', epoch: 1, round: 1 }, 4).report).toEqual([{ kind: 'drained', epoch: 1, round: 1 }]);
    expect(n2!.step(msg('n1', { kind: 'forward', page: 0, grant: 1, reqId: 9, requester: 'n3', want: 'write', dest: 'n3', exclusive: true }), 5)).toEqual({
      ...EMPTY, send: [{ to: 'n1', msg: { from: 'n2', epoch: 1, body: { kind: 'refused', page: 0, grant: 1 } } }],
    });
    n1!.step({ kind: 'freeze', epoch: 1, round: 1 }, 5);
    expect(n1!.step(msg('n2', { kind: 'refused', page: 0, grant: 1 }), 6)).toEqual({
      send: [{ to: 'n3', msg: { from: 'n1', epoch: 1, body: { kind: 'held', page: 0, reqId: 9 } } }], reply: [], report: [{ kind: 'drained', epoch: 1, round: 1 }],
    });
    // The batch applied nothing and keeps its pin: the cut saves p0 as it was.
    expect(n2!.step({ kind: 'cut', epoch: 1, round: 1 }, 7).report).toEqual([{ kind: 'saved', epoch: 1, round: 1, pages: [{ page: 0, version: 0, data: 'p0:' }] }]);
    expect(n2!.describeOp(3)).toBe('write p0:owner-exclusive/pin3 p2:invalid/write-held');
    for (const n of c.values()) n.checkInvariants();
  });
});

describe('ownership core: transfers survive loss and duplication', () => {
  it('the sender resends an unacknowledged transfer at its deadline; a duplicate is acknowledged again and changes nothing', () => {
    const c = cluster({ 0: 'n3', 1: 'n2', 2: 'n1' });
    const [n2, n3] = ['n2', 'n3'].map((id) => c.get(id)!);
    n2!.step({ kind: 'write', reqId: 5, ops: [{ page: 0, op: 'w' }] }, 0);
    n3!.step(msg('n1', { kind: 'forward', page: 0, grant: 1, reqId: 1, requester: 'n2', want: 'write', dest: 'n2', exclusive: true }), 1);
    expect(n3!.nextDeadline()).toBe(11);
    const transfer = { kind: 'transfer' as const, page: 0, grant: 1, reqId: 1, version: 0, data: 'p0:', exclusive: true };
    // The first copy is lost; at the deadline the sender sends it again, with the request id.
    expect(n3!.step({ kind: 'tick' }, 11)).toEqual({ ...EMPTY, send: [{ to: 'n2', msg: { from: 'n3', epoch: 1, body: transfer } }] });
    const first = n2!.step(msg('n3', transfer), 12);
    expect(first.reply).toEqual([{ reqId: 5, kind: 'written', versions: [{ page: 0, version: 1 }] }]);
    // A late duplicate (reordered) is acknowledged and ignored: the write stands, no second done.
    expect(n2!.step(msg('n3', transfer), 13)).toEqual({ ...EMPTY, send: [{ to: 'n3', msg: { from: 'n2', epoch: 1, body: { kind: 'transferAck', page: 0, grant: 1 } } }] });
    expect(n2!.view(0)).toEqual({ state: 'owner-exclusive', version: 1, data: 'p0:w' });
    n3!.step(msg('n2', { kind: 'transferAck', page: 0, grant: 1 }), 14);
    expect(n3!.nextDeadline()).toBeNull();
    expect(n3!.step({ kind: 'tick' }, 30)).toEqual(EMPTY);
  });

  it('a message of another directory epoch is dropped (fencing after a rebuild)', () => {
    const c = cluster({ 0: 'n3', 1: 'n2', 2: 'n1' });
    const n1 = c.get('n1')!;
    expect(n1.step(msg('n2', { kind: 'request', page: 0, reqId: 1, want: 'write' }, 0), 1)).toEqual(EMPTY);
    expect(n1.counters.fenced).toBe(1);
    expect(n1.managerEntry(0)).toEqual({ owner: 'n3', copyset: [], busy: false, queued: 0 });
  });

  it('an install of a newer epoch aborts the waiting unit ops and gates the node until round 0 thaws', () => {
    const c = cluster({ 0: 'n3', 1: 'n2', 2: 'n1' });
    const n1 = c.get('n1')!;
    n1.step({ kind: 'read', reqId: 2, page: 1 }, 1);
    const layout = { epoch: 2, members: ['n1', 'n2'], rangePages: 1, pageCount: 3 };
    expect(n1.step({ kind: 'install', layout, pages: [{ page: 0, version: 3, data: 'r' }], directory: [{ page: 0, owner: 'n1' }, { page: 2, owner: 'n2' }] }, 2)).toEqual({
      send: [], reply: [{ reqId: 2, kind: 'aborted' }], report: [{ kind: 'installed', epoch: 2 }],
    });
    expect(n1.isGated()).toBe(true);
    n1.step({ kind: 'thaw', epoch: 2, round: 0 }, 3);
    expect(n1.isGated()).toBe(false);
  });
});
