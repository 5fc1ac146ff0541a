import { describe, expect, it } from 'vitest';
import { EventHub, type EndReason, type HubEvent, type SubscriberPort } from '../../src/runtime/event-hub.js';

// The hub's invariants (event-hub.ts): 1 bounded memory, 2 a gap-free ordered
// run per reader or a cut, 3 emit never held back by a reader.

function recorder(): SubscriberPort & { wakes: number; ended: EndReason[] } {
  const r = { wakes: 0, ended: [] as EndReason[], wake: () => { r.wakes += 1; }, end: (why: EndReason) => { r.ended.push(why); } };
  return r;
}

function drain(sub: { take(): HubEvent | undefined }): HubEvent[] {
  const out: HubEvent[] = [];
  for (let e = sub.take(); e; e = sub.take()) out.push(e);
  return out;
}

const hubOf = (recentEvents = 8, subscriberQueue = 4, maxSubscribers = 3) => new EventHub(7n, { recentEvents, subscriberQueue, maxSubscribers }, () => 1_000);

const job = (jobId: string, detail = '') => ({ kind: 'job' as const, jobId, subject: 'n1', detail });

describe('EventHub', () => {
  it('numbers events from 1 per incarnation and stamps them with the clock', () => {
    const hub = hubOf();
    const a = hub.emit(job('j'));
    const b = hub.emit({ kind: 'member', subject: 'n2', from: 'alive', to: 'failed', detail: 'x' });
    expect([a.seq, b.seq]).toEqual([1n, 2n]);
    expect(b).toEqual({ seq: 2n, incarnation: 7n, atUnixMs: 1_000, kind: 'member', jobId: '', subject: 'n2', from: 'alive', to: 'failed', epoch: 0n, detail: 'x' });
  });

  it('keeps only the last recentEvents, oldest first (invariant 1)', () => {
    const hub = hubOf(8);
    for (let i = 1; i <= 3000; i++) hub.emit(job('j', String(i)));
    const kept = hub.recent();
    expect(kept).toHaveLength(8);
    expect(kept.map((e) => e.seq)).toEqual([2993n, 2994n, 2995n, 2996n, 2997n, 2998n, 2999n, 3000n]);
  });

  it('delivers live events in order to a reader that keeps up, waking it for each', () => {
    const hub = hubOf();
    const port = recorder();
    const sub = hub.subscribe({ jobId: '', replayRecent: 0 }, port);
    const seen: bigint[] = [];
    for (let i = 0; i < 20; i++) {
      hub.emit(job('j'));
      seen.push(...drain(sub).map((e) => e.seq));
    }
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => BigInt(i + 1)));
    expect(port.wakes).toBe(20);
    expect(port.ended).toEqual([]);
  });

  it('cuts off a reader whose queue is full instead of growing it, and the others go on (invariants 1-3)', () => {
    const hub = hubOf(8, 4);
    const slow = recorder();
    const fast = recorder();
    const slowSub = hub.subscribe({ jobId: '', replayRecent: 0 }, slow);
    const fastSub = hub.subscribe({ jobId: '', replayRecent: 0 }, fast);
    const fastSeen: bigint[] = [];
    for (let i = 0; i < 10; i++) {
      hub.emit(job('j'));
      fastSeen.push(...drain(fastSub).map((e) => e.seq));
    }
    expect(slow.ended).toEqual([{ kind: 'behind', queued: 4 }]);
    expect(slowSub.isOpen).toBe(false);
    expect(slowSub.queued).toBe(0);
    expect(hub.subscribers).toBe(1);
    expect(hub.cutOff).toBe(1);
    expect(fastSeen).toHaveLength(10);
    expect(fast.ended).toEqual([]);
  });

  it('passes only the filtered job\'s events; member events name no job and are left out', () => {
    const hub = hubOf(16, 16);
    const sub = hub.subscribe({ jobId: 'a', replayRecent: 0 }, recorder());
    hub.emit(job('a', '1'));
    hub.emit(job('b', '2'));
    hub.emit({ kind: 'member', subject: 'n1', to: 'failed', detail: '3' });
    hub.emit({ kind: 'round', jobId: 'a', subject: '4', to: 'committed', epoch: 4n, detail: '4' });
    expect(drain(sub).map((e) => e.detail)).toEqual(['1', '4']);
  });

  it('replays the last N kept events that pass the filter, then live ones, none twice and none missed (invariant 2)', () => {
    const hub = hubOf(8, 6);
    for (let i = 1; i <= 10; i++) hub.emit(job(i % 2 === 0 ? 'even' : 'odd', String(i)));
    const port = recorder();
    const sub = hub.subscribe({ jobId: 'even', replayRecent: 3 }, port);
    hub.emit(job('even', '12'));
    expect(drain(sub).map((e) => e.detail)).toEqual(['6', '8', '10', '12']);
    // Asking for more than is kept gets what is kept (and never more than a queue holds).
    const all = hub.subscribe({ jobId: '', replayRecent: 1_000_000 }, recorder());
    expect(drain(all).map((e) => e.seq)).toEqual([6n, 7n, 8n, 9n, 10n, 11n]);
  });

  it('refuses readers beyond maxSubscribers, and a closed reader frees its place', () => {
    const hub = hubOf(8, 4, 2);
    const a = hub.subscribe({ jobId: '', replayRecent: 0 }, recorder());
    hub.subscribe({ jobId: '', replayRecent: 0 }, recorder());
    expect(() => hub.subscribe({ jobId: '', replayRecent: 0 }, recorder())).toThrow(/already 2 watchers \(limit 2\)/);
    a.close();
    hub.emit(job('j'));
    expect(a.take()).toBeUndefined();
    expect(hub.subscribers).toBe(1);
    hub.subscribe({ jobId: '', replayRecent: 0 }, recorder());
    expect(hub.subscribers).toBe(2);
  });

  it('close ends every reader (what it had queued may still be sent) and refuses new ones', () => {
    const hub = hubOf();
    const p = recorder();
    const sub = hub.subscribe({ jobId: '', replayRecent: 0 }, p);
    hub.emit(job('j', 'queued'));
    hub.close();
    expect(p.ended).toEqual([{ kind: 'closed' }]);
    hub.emit(job('j', 'after'));
    expect(drain(sub).map((e) => e.detail)).toEqual(['queued']);
    expect(hub.subscribers).toBe(0);
    expect(() => hub.subscribe({ jobId: '', replayRecent: 0 }, recorder())).toThrow(/stopping/);
  });

  it('rejects bad limits', () => {
    expect(() => new EventHub(1n, { recentEvents: 0, subscriberQueue: 4, maxSubscribers: 1 }, () => 1_000)).toThrow(/recentEvents 0/);
  });
});
