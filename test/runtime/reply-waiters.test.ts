import { describe, expect, it } from 'vitest';
import { GridError } from '../../src/common/errors.js';
import { ReplyWaiters } from '../../src/runtime/reply-waiters.js';

// A shell's requests waiting on its core's replies (both coordinators' shells use it).

describe('ReplyWaiters', () => {
  it('feeds after the waiter is registered, wakes the oldest waiter of a key, and refuses everyone once closed', async () => {
    const w = new ReplyWaiters('the test coordinator');
    const fed: string[] = [];
    // A core that replies synchronously inside feed still finds its waiter.
    const sync = w.ask<number>('k1', () => { fed.push('k1'); w.wake('k1', 1); });
    const a = w.ask<string>('beat#n1#7', () => fed.push('a'));
    const b = w.ask<string>('beat#n1#7', () => fed.push('b'));
    expect(w.size).toBe(2);
    w.wake('beat#n1#7', 'first');
    w.wake('nobody', 'ignored');
    expect(await sync).toBe(1);
    expect(await a).toBe('first');
    const c = w.ask<string>('other', () => fed.push('c'));
    w.close();
    for (const p of [b, c, w.ask('late', () => fed.push('late'))]) {
      const err = await p.then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(GridError);
      expect((err as GridError).kind).toBe('unavailable');
      expect((err as GridError).message).toBe('the test coordinator is shutting down');
    }
    expect(fed).toEqual(['k1', 'a', 'b', 'c']);
    expect(w.size).toBe(0);
  });
});
