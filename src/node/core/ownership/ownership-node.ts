import { checkLayout, managerOf, type DirectoryLayout } from '../../../protocol/core/ownership/directory.js';
import { Holdings } from './holdings.js';
import { PageManager } from './manager.js';
import { pump, type OpsCtx, type UnitOp } from './unit-ops.js';
import type {
  OwnershipConfig, OwnershipInput, OwnershipStep, PageImage, PageView, PeerBody, PeerMsg, Want,
} from './types.js';

export * from './types.js';

// The page ownership protocol of one node for one job, as a pure core
// (issue 9; docs/ownership.md). Each page has one owner (the writable copy)
// and a copyset (read-only copies). A read miss asks the page's manager,
// which has the owner send a copy; a write asks the manager, which
// invalidates every copy, then has the owner hand the page over (or grants
// an owner that holds it shared). The sender keeps a page it handed over
// until the receiver acknowledges it, resending it meanwhile; grants number
// each page's actions so a duplicate is only acknowledged again. Atomic
// batches are in unit-ops.ts, the manager in manager.ts.
//
// Approach II B: `freeze` closes the gate (no request leaves this node, its
// manager starts no action), actions already started run to the end, except
// forwards for pages a batch pins, which go back to their manager; once
// nothing is in flight the node reports `drained`. On
// `cut` (sent once every node drained) it reports the pages it owns, which
// no other node reports; it stays gated until `thaw`.
//
// Invariants (checkInvariants; tests cite them as K1..K6):
//  K1. A pinned page is owner-exclusive here and belongs to a waiting batch;
//      no forward waits for a pinned page while the gate is closed.
//  K2. At most one request per page is out from this node; a read is out
//      only for a page this node holds no copy of.
//  K3. Every copy that is not invalid, and every unacknowledged handoff,
//      holds content.
//  K4. Bounded: at most maxWaitingOps waiting unit ops.
//  K5. The manager's owner is never in its copyset (manager.ts).

interface Outstanding { reqId: number; want: Want; status: 'sent' | 'held' }

interface Gate { kind: 'install' | 'round'; round: number; drained: boolean; cut: boolean; saved: Set<number> | null; ownedAtFreeze: PageImage<unknown>[] }

export class OwnershipNode<D, W> {
  private layout: DirectoryLayout | null = null;
  private readonly holdings = new Holdings<D>();
  private readonly manager: PageManager<D>;
  private waiting: UnitOp<W>[] = [];
  private readonly outstanding = new Map<number, Outstanding>();
  private readonly pins = new Map<number, number>();
  private readonly deferred = new Map<number, Array<{ from: string; body: Extract<PeerBody<D>, { kind: 'forward' }> }>>();
  private readonly selfQueue: PeerBody<D>[] = [];
  private gate: Gate | null = null;
  private seq = 0;
  private nowMs = 0;
  private out: OwnershipStep<D> = { send: [], reply: [], report: [] };
  readonly counters = { transfers: 0, copies: 0, invalidations: 0, resent: 0, fenced: 0, inFlightAtFreeze: 0 };

  constructor(private readonly config: OwnershipConfig<D, W>) {
    if (!(config.retransmitMs > 0) || config.maxWaitingOps < 1 || config.maxBatchPages < 1) throw new RangeError('ownership config: retransmitMs > 0, maxWaitingOps and maxBatchPages >= 1');
    this.manager = new PageManager<D>(config.nodeId);
  }

  private mutant(name: string): boolean {
    return this.config.mutants?.has(name) ?? false;
  }

  private get id(): string { return this.config.nodeId; }
  private get gated(): boolean { return this.gate !== null && (this.gate.kind === 'install' || !this.mutant('no-gate-during-freeze')); }

  step(input: OwnershipInput<D, W>, nowMs: number): OwnershipStep<D> {
    if (nowMs < this.nowMs) throw new Error(`ownership time went back: ${nowMs} < ${this.nowMs}`);
    this.nowMs = nowMs;
    this.out = { send: [], reply: [], report: [] };
    switch (input.kind) {
      case 'install': this.onInstall(input); break;
      case 'read': case 'write': this.onUnitOp(input); break;
      case 'evict': this.onEvict(input.page, input.to); break;
      case 'message': this.onMessage(input.msg); break;
      case 'freeze': this.onFreeze(input.epoch, input.round); break;
      case 'cut': this.onCut(input.epoch, input.round); break;
      case 'thaw': this.onThaw(input.epoch, input.round); break;
      case 'tick': break;
    }
    this.settle();
    this.resend();
    return this.out;
  }

  nextDeadline(): number | null {
    let next: number | null = null;
    for (const h of this.holdings.handoffs.values()) next = next === null ? h.nextSendMs : Math.min(next, h.nextSendMs);
    return next;
  }

  // ---- views (checkers, status, tests) -------------------------------------

  epoch(): number | null { return this.layout?.epoch ?? null; }
  view(page: number): PageView<D> { const c = this.holdings.get(page); return { state: c.state, version: c.version, data: c.data }; }
  handoffs(): Array<{ page: number; to: string; grant: number; version: number; data: D }> { return [...this.holdings.handoffs.values()]; }
  managerEntry(page: number): ReturnType<PageManager<D>['entry']> { return this.manager.entry(page); }
  isGated(): boolean { return this.gate !== null; }
  /** A unit op's progress (a stuck unit's diagnosis): its pages, how this node holds each, what is out for it. */
  describeOp(reqId: number): string {
    const op = this.waiting.find((o) => o.reqId === reqId);
    if (!op) return 'not waiting';
    const pages = op.kind === 'read' ? [op.page] : op.pages;
    return `${op.kind} ${pages.map((p) => `p${p}:${this.holdings.get(p).state}${this.pins.has(p) ? `/pin${this.pins.get(p)}` : ''}${this.outstanding.has(p) ? `/${this.outstanding.get(p)!.want}-${this.outstanding.get(p)!.status}` : ''}`).join(' ')}`;
  }

  /** What the drain still waits for (status, a stuck round's diagnosis). */
  inFlight(): { managing: number; handoffs: number; pins: number; requests: number; held: number } {
    let requests = 0;
    let held = 0;
    for (const o of this.outstanding.values()) if (o.status === 'sent') requests += 1; else held += 1;
    return { managing: this.manager.busyPages(), handoffs: this.holdings.handoffs.size, pins: this.pins.size, requests, held };
  }
  waitingOps(): number { return this.waiting.length; }

  // ---- inputs ---------------------------------------------------------------

  private onInstall(i: Extract<OwnershipInput<D, W>, { kind: 'install' }>): void {
    checkLayout(i.layout);
    if (!i.layout.members.includes(this.id)) throw new Error(`install of epoch ${i.layout.epoch} on ${this.id}, not a member`);
    if (this.layout && i.layout.epoch <= this.layout.epoch) return; // an older reconfiguration arriving late
    for (const e of i.directory) if (managerOf(i.layout, e.page) !== this.id) throw new Error(`install: page ${e.page} is not managed by ${this.id}`);
    for (const op of this.waiting) this.out.reply.push({ reqId: op.reqId, kind: 'aborted' });
    this.waiting = [];
    this.outstanding.clear();
    this.pins.clear();
    this.deferred.clear();
    this.selfQueue.length = 0;
    // Gated until every member installed (thaw of round 0): a peer still on the old epoch would drop our messages.
    this.gate = { kind: 'install', round: 0, drained: true, cut: false, saved: null, ownedAtFreeze: [] };
    this.layout = i.layout;
    this.holdings.reset(i.pages);
    this.manager.install(i.directory);
    this.out.report.push({ kind: 'installed', epoch: i.layout.epoch });
  }

  private onUnitOp(i: Extract<OwnershipInput<D, W>, { kind: 'read' | 'write' }>): void {
    const refuse = (reason: string): void => { this.out.reply.push({ reqId: i.reqId, kind: 'refused', reason }); };
    if (!this.layout) return refuse('no pages installed on this node');
    if (this.waiting.length >= this.config.maxWaitingOps) return refuse(`over ${this.config.maxWaitingOps} ops waiting`);
    const pages = i.kind === 'read' ? [i.page] : [...new Set(i.ops.map((o) => o.page))].sort((a, b) => a - b);
    if (pages.length === 0) return refuse('an empty batch');
    if (pages.length > this.config.maxBatchPages) return refuse(`a batch over ${this.config.maxBatchPages} pages`);
    const bad = pages.find((p) => !Number.isSafeInteger(p) || p < 0 || p >= this.layout!.pageCount);
    if (bad !== undefined) return refuse(`page ${bad} outside 0..${this.layout.pageCount - 1}`);
    this.waiting.push(i.kind === 'read' ? { kind: 'read', reqId: i.reqId, page: i.page } : { kind: 'write', reqId: i.reqId, ops: i.ops, pages });
  }

  private onEvict(page: number, to: string): void {
    // Advisory: skipped when the page is not ours to give, busy here, or the gate is closed.
    const l = this.layout;
    if (!l || this.gated || to === this.id || !l.members.includes(to) || !this.holdings.isOwner(page)) return;
    if (this.pins.has(page) || this.outstanding.has(page)) return;
    // Never a page a waiting op needs: evicting it would only send a batch after it again (starvation).
    if (this.waiting.some((o) => (o.kind === 'read' ? o.page === page : o.pages.includes(page)))) return;
    this.sendRequest(page, 'evict', to);
  }

  private onFreeze(epoch: number, round: number): void {
    if (epoch !== this.layout?.epoch || (this.gate?.kind === 'round' && this.gate.round >= round)) return;
    // A freeze may overtake the thaw of the install or of the round before (streams reorder): the gate stays closed
    // and is now this round's; that thaw, arriving later, no longer matches.
    this.gate = { kind: 'round', round, drained: false, cut: false, saved: null, ownedAtFreeze: this.holdings.owned() };
    if (!this.drained()) this.counters.inFlightAtFreeze += 1;
    if (!this.gated) return;
    this.refuseDeferred();
    this.manager.gate((to, b) => this.send(to, b));
  }

  private onCut(epoch: number, round: number): void {
    if (epoch !== this.layout?.epoch || this.gate?.round !== round) return;
    this.gate.cut = true;
  }

  private onThaw(epoch: number, round: number): void {
    if (epoch !== this.layout?.epoch || this.gate?.round !== round) return;
    const wasGated = this.gated;
    this.gate = null;
    if (wasGated) this.manager.reopen((to, b) => this.send(to, b));
  }

  // ---- messages ------------------------------------------------------------

  private onMessage(msg: PeerMsg<D>): void {
    if (!this.layout || msg.epoch !== this.layout.epoch) {
      this.counters.fenced += 1;
      return;
    }
    this.handle(msg.from, msg.body);
  }

  private handle(from: string, b: PeerBody<D>): void {
    const send = (to: string, body: PeerBody<D>): void => this.send(to, body);
    switch (b.kind) {
      case 'request': this.manager.onRequest(from, b, this.gated, send); break;
      case 'invalidated': this.manager.onInvalidated(from, b.page, b.grant, send); break;
      case 'done': this.manager.onDone(from, b.page, b.grant, this.gated, send); break;
      case 'refused': this.manager.onRefused(from, b.page, b.grant, this.gated, send); break;
      case 'held': { const o = this.outstanding.get(b.page); if (o?.reqId === b.reqId) o.status = 'held'; break; }
      case 'cancel': if (this.outstanding.get(b.page)?.reqId === b.reqId) this.outstanding.delete(b.page); break;
      case 'forward':
        if (!this.pins.has(b.page)) this.serveForward(b);
        else if (this.gated) this.send(from, { kind: 'refused', page: b.page, grant: b.grant });
        else this.deferred.set(b.page, [...(this.deferred.get(b.page) ?? []), { from, body: b }]);
        break;
      case 'invalidate': {
        this.counters.invalidations += 1;
        const c = this.holdings.get(b.page);
        if (c.state === 'shared' && !this.mutant('stale-copy-after-invalidate')) this.holdings.set(b.page, { state: 'invalid', version: 0, data: null });
        send(from, { kind: 'invalidated', page: b.page, grant: b.grant });
        break;
      }
      case 'grant': this.onGrant(b); break;
      case 'copy': this.onCopy(b); break;
      case 'transfer': this.onTransfer(from, b); break;
      case 'transferAck': this.holdings.handoffs.delete(handoffKey(b.page, b.grant)); break;
    }
  }

  private serveForward(b: Extract<PeerBody<D>, { kind: 'forward' }>): void {
    const c = this.holdings.get(b.page);
    if (!this.holdings.isOwner(b.page)) throw new Error(`${this.id}: forward of page ${b.page} grant ${b.grant}, but holds it ${c.state}`);
    if (b.want === 'read') {
      this.counters.copies += 1;
      this.send(b.dest, { kind: 'copy', page: b.page, grant: b.grant, reqId: b.reqId, version: c.version, data: c.data! });
      this.holdings.set(b.page, { ...c, state: 'owner-shared' });
      return;
    }
    this.counters.transfers += 1;
    const t = { page: b.page, grant: b.grant, reqId: b.want === 'evict' ? null : b.reqId, version: c.version, data: c.data!, exclusive: b.exclusive };
    this.send(b.dest, { kind: 'transfer', ...t });
    this.holdings.set(b.page, { state: 'invalid', version: 0, data: null });
    // The sender keeps the page until the receiver acknowledges it.
    if (!this.mutant('sender-drops-before-ack')) {
      this.holdings.handoffs.set(handoffKey(b.page, b.grant), { ...t, to: b.dest, nextSendMs: this.nowMs + this.config.retransmitMs });
    }
    if (b.want === 'evict' && this.outstanding.get(b.page)?.reqId === b.reqId) this.outstanding.delete(b.page);
  }

  private onGrant(b: Extract<PeerBody<D>, { kind: 'grant' }>): void {
    const o = this.outstanding.get(b.page);
    if (o?.reqId !== b.reqId || !this.holdings.fresh(b.page, b.grant)) throw new Error(`${this.id}: unexpected grant of page ${b.page}`);
    if (b.want === 'write') {
      const c = this.holdings.get(b.page);
      if (!this.holdings.isOwner(b.page)) throw new Error(`${this.id}: write grant of page ${b.page} it holds ${c.state}`);
      this.holdings.set(b.page, { ...c, state: 'owner-exclusive' });
    }
    this.outstanding.delete(b.page);
    this.send(this.managerOf(b.page), { kind: 'done', page: b.page, grant: b.grant });
  }

  private onCopy(b: Extract<PeerBody<D>, { kind: 'copy' }>): void {
    if (!this.holdings.fresh(b.page, b.grant)) return;
    if (this.outstanding.get(b.page)?.reqId !== b.reqId) throw new Error(`${this.id}: copy of page ${b.page} nobody asked for`);
    this.outstanding.delete(b.page);
    this.holdings.set(b.page, { state: 'shared', version: b.version, data: b.data });
    this.send(this.managerOf(b.page), { kind: 'done', page: b.page, grant: b.grant });
  }

  private onTransfer(from: string, b: Extract<PeerBody<D>, { kind: 'transfer' }>): void {
    // Acknowledged every time, installed once: a resent or late copy changes nothing.
    this.send(from, { kind: 'transferAck', page: b.page, grant: b.grant });
    if (!this.holdings.fresh(b.page, b.grant)) return;
    this.holdings.set(b.page, { state: b.exclusive ? 'owner-exclusive' : 'owner-shared', version: b.version, data: b.data });
    if (b.reqId !== null && this.outstanding.get(b.page)?.reqId === b.reqId) this.outstanding.delete(b.page);
    this.send(this.managerOf(b.page), { kind: 'done', page: b.page, grant: b.grant });
  }

  // ---- helpers -------------------------------------------------------------

  private managerOf(page: number): string {
    return managerOf(this.layout!, page);
  }

  private send(to: string, body: PeerBody<D>): void {
    if (to === this.id) this.selfQueue.push(body);
    else this.out.send.push({ to, msg: { from: this.id, epoch: this.layout!.epoch, body } });
  }

  private sendRequest(page: number, want: Want, to?: string): void {
    const reqId = ++this.seq;
    this.outstanding.set(page, { reqId, want, status: 'sent' });
    this.send(this.managerOf(page), { kind: 'request', page, reqId, want, ...(to === undefined ? {} : { to }) });
  }

  private opsCtx(): OpsCtx<D, W> {
    return {
      holdings: this.holdings, pins: this.pins, apply: this.config.apply,
      request: (page, want) => { if (!this.outstanding.has(page) && !this.gated) this.sendRequest(page, want); },
      reply: (r) => this.out.reply.push(r),
      released: (page) => {
        const d = this.deferred.get(page);
        this.deferred.delete(page);
        for (const f of d ?? []) this.serveForward(f.body);
      },
    };
  }

  /**
   * Runs the waiting ops, then one message to itself, until neither moves;
   * then the gate's reports. Ops first: a page that just arrived is pinned
   * by the batch that asked for it before this node, as its manager, hands
   * it to the next requester (else a manager's own batches starve).
   */
  private settle(): void {
    for (let i = 0; ; i++) {
      if (i > 100_000) throw new Error(`${this.id}: settle does not converge`);
      if (this.layout && !this.gated) this.waiting = pump(this.opsCtx(), this.waiting);
      const b = this.selfQueue.shift();
      if (!b) break;
      this.handle(this.id, b);
    }
    this.reportGate();
  }

  /** The gate closes: forwards waiting for pinned pages go back to their managers. */
  private refuseDeferred(): void {
    for (const [page, fs] of [...this.deferred].sort((a, b) => a[0] - b[0])) {
      for (const f of fs) this.send(f.from, { kind: 'refused', page, grant: f.body.grant });
    }
    this.deferred.clear();
  }

  private drained(): boolean {
    if (this.manager.busyPages() > 0 || this.holdings.handoffs.size > 0 || this.deferred.size > 0) return false;
    for (const o of this.outstanding.values()) if (o.status === 'sent') return false;
    return true;
  }

  private reportGate(): void {
    const g = this.gate;
    if (!g || !this.layout || g.saved || !this.drained()) return;
    const epoch = this.layout.epoch;
    if (!g.drained) {
      g.drained = true;
      this.out.report.push({ kind: 'drained', epoch, round: g.round });
    }
    if (!g.cut) return;
    const pages = this.holdings.owned();
    if (this.mutant('requester-and-owner-both-save')) {
      // The old bug: what was owned when the freeze began is saved too, even if it moved during the drain.
      const have = new Set(pages.map((p) => p.page));
      for (const p of g.ownedAtFreeze as PageImage<D>[]) if (!have.has(p.page)) pages.push(p);
    }
    g.saved = new Set(pages.map((p) => p.page));
    this.out.report.push({ kind: 'saved', epoch, round: g.round, pages });
  }

  private resend(): void {
    for (const h of this.holdings.handoffs.values()) {
      if (this.nowMs < h.nextSendMs) continue;
      h.nextSendMs = this.nowMs + this.config.retransmitMs;
      this.counters.resent += 1;
      this.out.send.push({ to: h.to, msg: { from: this.id, epoch: this.layout!.epoch, body: { kind: 'transfer', page: h.page, grant: h.grant, reqId: h.reqId, version: h.version, data: h.data, exclusive: h.exclusive } } });
    }
  }

  checkInvariants(): void {
    const fail = (m: string): never => { throw new Error(`${this.id}: ${m}`); };
    for (const [page, reqId] of this.pins) {
      if (this.holdings.get(page).state !== 'owner-exclusive') fail(`K1: pinned page ${page} is not owner-exclusive`);
      if (!this.waiting.some((o) => o.reqId === reqId && o.kind === 'write')) fail(`K1: page ${page} pinned by no waiting batch`);
      if (this.gated && this.deferred.has(page)) fail(`K1: a forward waits for page ${page} behind a closed gate`);
    }
    for (const [page, o] of this.outstanding) if (o.want === 'read' && this.holdings.get(page).state === 'shared') fail(`K2: read out for page ${page} it holds shared`);
    for (const [page, c] of this.holdings.entries()) if (c.state !== 'invalid' && c.data === null) fail(`K3: page ${page} ${c.state} without content`);
    if (this.waiting.length > this.config.maxWaitingOps) fail('K4: too many waiting ops');
    this.manager.check();
  }
}

function handoffKey(page: number, grant: number): string {
  return `${page}/${grant}`;
}
