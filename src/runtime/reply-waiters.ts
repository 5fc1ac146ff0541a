import { GridError } from '../common/errors.js';

// A shell's requests waiting on its core's replies: a request feeds its input
// to the serial driver and waits under a key its reply will name (a reqId,
// or a heartbeat's member and seq); the shell wakes the oldest waiter of a
// key with each reply. After close() every waiter, and every later request,
// is refused UNAVAILABLE (the core will answer none of them).

type Waiter = (answer: unknown) => void;

export class ReplyWaiters {
  private readonly waiting = new Map<string, Waiter[]>();
  private closed = false;

  /** who: the service, as the refusal names it ("the grid coordinator"). */
  constructor(private readonly who: string) {}

  /** Registers the waiter under key, then feeds the input (feed), and resolves with the reply. */
  ask<A>(key: string, feed: () => void): Promise<A> {
    if (this.closed) return Promise.reject(this.refusal());
    return new Promise<A>((resolve, reject) => {
      const list = this.waiting.get(key) ?? [];
      list.push((a) => (a === null ? reject(this.refusal()) : resolve(a as A)));
      this.waiting.set(key, list);
      feed();
    });
  }

  wake(key: string, answer: unknown): void {
    const list = this.waiting.get(key);
    const w = list?.shift();
    if (list?.length === 0) this.waiting.delete(key);
    w?.(answer);
  }

  /** Waiting requests (for a test that no request is left behind). */
  get size(): number {
    let n = 0;
    for (const list of this.waiting.values()) n += list.length;
    return n;
  }

  close(): void {
    this.closed = true;
    for (const list of this.waiting.values()) for (const w of list) w(null);
    this.waiting.clear();
  }

  private refusal(): GridError {
    return new GridError('unavailable', `${this.who} is shutting down`);
  }
}
