import type { DirectoryEntry } from '../../../protocol/core/ownership/directory.js';
import type { PeerBody, Want } from './types.js';

// The manager side of a node: the directory entries of the pages this node
// manages (owner, copyset) and one action at a time per page. Requests for a
// busy page wait in a FIFO queue (at most one per node and page: a node has
// one request out per page). A write first invalidates every copy but the
// requester's and only then moves the page, so no copy is readable once a
// write can apply. An entry changes only when the receiver says `done`, so
// the owner the manager names is always the node that holds the page.
// While a checkpoint gates the job, queued requests are told `held` and no
// action starts; actions already started run to the end (the drain), except
// one whose owner refuses it (its page is pinned by a batch that waits
// behind the gate): that request goes back to the head of the queue, held.

interface Queued { requester: string; reqId: number; want: Want; to: string | undefined; held: boolean }

interface Action { req: Queued; grant: number; dest: string; awaiting: Set<string> }

interface Entry { owner: string; copyset: Set<string>; grant: number; busy: Action | null; queue: Queued[] }

export type SendBody<D> = (to: string, body: PeerBody<D>) => void;

export class PageManager<D> {
  private readonly entries = new Map<number, Entry>();

  constructor(private readonly nodeId: string) {}

  install(entries: readonly DirectoryEntry[]): void {
    this.entries.clear();
    for (const e of entries) this.entries.set(e.page, { owner: e.owner, copyset: new Set(), grant: 0, busy: null, queue: [] });
  }

  manages(page: number): boolean {
    return this.entries.has(page);
  }

  busyPages(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.busy) n += 1;
    return n;
  }

  /** For checkers and tests: the manager's view of a page. */
  entry(page: number): { owner: string; copyset: string[]; busy: boolean; queued: number } | null {
    const e = this.entries.get(page);
    return e ? { owner: e.owner, copyset: [...e.copyset].sort(), busy: e.busy !== null, queued: e.queue.length } : null;
  }

  onRequest(from: string, b: Extract<PeerBody<D>, { kind: 'request' }>, gated: boolean, send: SendBody<D>): void {
    const e = this.must(b.page);
    // Not the busy action's: its requester may ask again before the `done` that ends it arrives (streams reorder).
    if (e.queue.some((q) => q.requester === from)) throw new Error(`manager ${this.nodeId}: ${from} has two requests out for page ${b.page}`);
    const q: Queued = { requester: from, reqId: b.reqId, want: b.want, to: b.to, held: gated };
    e.queue.push(q);
    if (gated) send(from, { kind: 'held', page: b.page, reqId: b.reqId });
    else this.startNext(b.page, e, send);
  }

  onInvalidated(from: string, page: number, grant: number, send: SendBody<D>): void {
    const e = this.must(page);
    const a = e.busy;
    if (!a || a.grant !== grant || !a.awaiting.delete(from)) throw new Error(`manager ${this.nodeId}: unexpected invalidated of page ${page} grant ${grant} from ${from}`);
    e.copyset.delete(from);
    if (a.awaiting.size === 0) this.move(page, e, a, send);
  }

  onDone(from: string, page: number, grant: number, gated: boolean, send: SendBody<D>): void {
    const e = this.must(page);
    const a = e.busy;
    if (!a || a.grant !== grant || a.dest !== from || a.awaiting.size > 0) throw new Error(`manager ${this.nodeId}: unexpected done of page ${page} grant ${grant} from ${from}`);
    switch (a.req.want) {
      case 'read': if (a.dest !== e.owner) e.copyset.add(a.dest); break;
      case 'write': e.owner = a.dest; e.copyset.clear(); break;
      case 'evict': e.copyset.delete(a.dest); e.owner = a.dest; break;
    }
    e.busy = null;
    if (!gated) this.startNext(page, e, send);
  }

  /** The owner refused the forward (pinned behind the gate): the request waits again, first in line. */
  onRefused(from: string, page: number, grant: number, gated: boolean, send: SendBody<D>): void {
    const e = this.must(page);
    const a = e.busy;
    if (!a || a.grant !== grant || from !== e.owner || a.awaiting.size > 0) throw new Error(`manager ${this.nodeId}: unexpected refusal of page ${page} grant ${grant} from ${from}`);
    e.busy = null;
    e.queue.unshift({ ...a.req, held: gated });
    if (gated) send(a.req.requester, { kind: 'held', page, reqId: a.req.reqId });
    else this.startNext(page, e, send);
  }

  /** The gate closes: every queued request not started is told it is held. */
  gate(send: SendBody<D>): void {
    for (const [page, e] of this.entries) {
      for (const q of e.queue) {
        if (q.held) continue;
        q.held = true;
        send(q.requester, { kind: 'held', page, reqId: q.reqId });
      }
    }
  }

  reopen(send: SendBody<D>): void {
    for (const [page, e] of this.entries) {
      for (const q of e.queue) q.held = false;
      this.startNext(page, e, send);
    }
  }

  private startNext(page: number, e: Entry, send: SendBody<D>): void {
    while (!e.busy && e.queue.length > 0) {
      const req = e.queue.shift()!;
      if (req.want === 'evict' && e.owner !== req.requester) {
        // The page moved (a grab won the race): the eviction has nothing to do.
        send(req.requester, { kind: 'cancel', page, reqId: req.reqId });
        continue;
      }
      const dest = req.want === 'evict' ? req.to! : req.requester;
      const a: Action = { req, grant: ++e.grant, dest, awaiting: new Set() };
      e.busy = a;
      if (req.want === 'write') for (const c of e.copyset) if (c !== req.requester) a.awaiting.add(c);
      if (a.awaiting.size > 0) for (const c of a.awaiting) send(c, { kind: 'invalidate', page, grant: a.grant });
      else this.move(page, e, a, send);
    }
  }

  private move(page: number, e: Entry, a: Action, send: SendBody<D>): void {
    if (e.owner === a.dest) {
      send(a.dest, { kind: 'grant', page, grant: a.grant, reqId: a.req.reqId, want: a.req.want });
      return;
    }
    // Whether the receiver of the page holds the only copy (a read moves no ownership: false).
    const exclusive = a.req.want === 'write' || (a.req.want === 'evict' && [...e.copyset].every((c) => c === a.dest));
    send(e.owner, { kind: 'forward', page, grant: a.grant, reqId: a.req.reqId, requester: a.req.requester, want: a.req.want, dest: a.dest, exclusive });
  }

  private must(page: number): Entry {
    const e = this.entries.get(page);
    if (!e) throw new Error(`manager ${this.nodeId} does not manage page ${page}`);
    return e;
  }

  /** K5: the owner is never in its page's copyset; a busy action awaits only copy holders. */
  check(): void {
    for (const [page, e] of this.entries) {
      if (e.copyset.has(e.owner)) throw new Error(`K5: manager ${this.nodeId}: owner ${e.owner} of page ${page} is in its copyset`);
      if (e.busy) for (const w of e.busy.awaiting) if (!e.copyset.has(w)) throw new Error(`K5: manager ${this.nodeId}: page ${page} awaits ${w}, not a copy holder`);
      const seen = new Set(e.queue.map((q) => q.requester));
      if (seen.size !== e.queue.length) throw new Error(`K5: manager ${this.nodeId}: two queued requests of one node for page ${page}`);
    }
  }
}
