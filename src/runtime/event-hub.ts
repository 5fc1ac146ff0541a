import { GridError } from '../common/errors.js';

// A service's events for its Watch readers ("push, not poll"). Every event
// gets the next sequence number, goes into a bounded ring of recent events
// (for replay) and into the bounded queue of each subscriber whose filter it
// passes. Invariants:
//   1. Memory is bounded: the ring, each queue and the number of subscribers
//      have named maximums (HubLimits).
//   2. A subscriber sees a gap-free, in-order run of the events it asked for:
//      replayed ones first, then live ones, never one twice. A subscriber that
//      falls too far behind is cut off (told why), never fed a silent gap and
//      never allowed to grow memory.
//   3. emit never blocks and never throws because of a reader: the service
//      is never held back by whoever watches it.
// No I/O here: the clock comes in, and delivery is the caller's (watch-stream.ts).

export type WatchKind = 'job' | 'round' | 'member' | 'recovery' | 'container';

export interface HubEvent {
  seq: bigint;
  incarnation: bigint;
  atUnixMs: number;
  kind: WatchKind;
  /** Empty for events that name no job. */
  jobId: string;
  /** What the event is about: a node id, a cluster id, an epoch as text. */
  subject: string;
  from: string;
  to: string;
  /** 0n when no epoch applies. */
  epoch: bigint;
  detail: string;
}

/** What a service says happened; the hub numbers and stamps it. */
export type NewEvent = Pick<HubEvent, 'kind' | 'subject' | 'detail'> & Partial<Pick<HubEvent, 'jobId' | 'from' | 'to' | 'epoch'>>;

export interface HubLimits {
  /** Recent events kept for replay. */
  recentEvents: number;
  /** Events waiting for one subscriber before it is cut off. */
  subscriberQueue: number;
  /** Readers at once; more are refused (RESOURCE_EXHAUSTED). */
  maxSubscribers: number;
}

export const DEFAULT_HUB_LIMITS: HubLimits = { recentEvents: 1024, subscriberQueue: 1024, maxSubscribers: 64 };

export function validateHubLimits(l: HubLimits): HubLimits {
  for (const [name, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v < 1 || v > 1_000_000) throw new Error(`bad hub limit ${name} ${v}: expected 1 to 1000000`);
  }
  return l;
}

export interface WatchFilter {
  /** Only this job's events; empty for all. */
  jobId: string;
  /** Recent events (that pass the filter) first; clamped to what is kept. */
  replayRecent: number;
}

export type EndReason = { kind: 'behind'; queued: number } | { kind: 'closed' };

/** How the hub reaches one reader. Called synchronously from emit: do no I/O inline. */
export interface SubscriberPort {
  /** Events are waiting to be taken. */
  wake(): void;
  /** The hub ended the subscription (it is already removed); on 'closed' the queued events may still be taken. */
  end(why: EndReason): void;
}

export class Subscription {
  private readonly queue: HubEvent[] = [];
  private closed = false;

  constructor(readonly filter: WatchFilter, private readonly port: SubscriberPort, private readonly remove: (s: Subscription) => void) {}

  /** The next waiting event, oldest first. */
  take(): HubEvent | undefined {
    return this.queue.shift();
  }

  get queued(): number {
    return this.queue.length;
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** The reader left (cancel, deadline, disconnect). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.remove(this);
  }

  passes(e: HubEvent): boolean {
    return this.filter.jobId === '' || e.jobId === this.filter.jobId;
  }

  /** false: the queue was full and the subscription is now ended. */
  offer(e: HubEvent, limit: number): boolean {
    if (this.closed) return true;
    if (this.queue.length >= limit) {
      const queued = this.queue.length;
      this.close();
      this.port.end({ kind: 'behind', queued });
      return false;
    }
    this.queue.push(e);
    this.port.wake();
    return true;
  }

  /** The service stops: what is queued may still be taken (and sent), nothing more comes. */
  endByHub(): void {
    if (this.closed) return;
    this.closed = true;
    this.remove(this);
    this.port.end({ kind: 'closed' });
  }
}

export class EventHub {
  private readonly ring: HubEvent[] = [];
  /** Index of the oldest event in ring once it is full. */
  private oldest = 0;
  private seq = 0n;
  private readonly subs = new Set<Subscription>();
  private closed = false;
  /** Subscribers cut off for falling behind, since start. */
  cutOff = 0;

  constructor(
    readonly incarnation: bigint,
    readonly limits: HubLimits,
    /** Wall-clock time for the events' stamps (the runtime's clock.wallMs). */
    private readonly nowUnixMs: () => number,
  ) {
    validateHubLimits(limits);
  }

  emit(n: NewEvent): HubEvent {
    this.seq += 1n;
    const e: HubEvent = {
      seq: this.seq, incarnation: this.incarnation, atUnixMs: this.nowUnixMs(), kind: n.kind, jobId: n.jobId ?? '',
      subject: n.subject, from: n.from ?? '', to: n.to ?? '', epoch: n.epoch ?? 0n, detail: n.detail,
    };
    if (this.ring.length < this.limits.recentEvents) this.ring.push(e);
    else {
      this.ring[this.oldest] = e;
      this.oldest = (this.oldest + 1) % this.limits.recentEvents;
    }
    for (const s of [...this.subs]) {
      if (s.passes(e) && !s.offer(e, this.limits.subscriberQueue)) this.cutOff += 1;
    }
    return e;
  }

  /** Kept events, oldest first. */
  recent(): HubEvent[] {
    return [...this.ring.slice(this.oldest), ...this.ring.slice(0, this.oldest)];
  }

  subscribe(filter: WatchFilter, port: SubscriberPort): Subscription {
    if (this.closed) throw new GridError('unavailable', 'the service is stopping: no new watchers');
    if (this.subs.size >= this.limits.maxSubscribers) {
      throw new GridError('resource-exhausted', `already ${this.subs.size} watchers (limit ${this.limits.maxSubscribers})`);
    }
    const sub = new Subscription(filter, port, (s) => this.subs.delete(s));
    const want = Math.max(0, Math.min(filter.replayRecent, this.limits.recentEvents, this.limits.subscriberQueue));
    const replay = want === 0 ? [] : this.recent().filter((e) => sub.passes(e)).slice(-want);
    this.subs.add(sub);
    for (const e of replay) sub.offer(e, this.limits.subscriberQueue);
    return sub;
  }

  get subscribers(): number {
    return this.subs.size;
  }

  /** The service stops: every reader's stream ends, and no new one starts. */
  close(): void {
    this.closed = true;
    for (const s of [...this.subs]) s.endByHub();
  }
}
