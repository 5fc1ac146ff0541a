import type { OwnershipNode, PageImage, UnitReply } from '../../node/core/ownership/ownership-node.js';
import { Violation } from '../checkers.js';
import { bankTotal, sameBalances, sum, type Balances, type Credit } from './bank.js';

// The containers scenario's checkers (ARCHITECTURE §3.1, issue 9), after
// every event unless the job is being recovered (a node died: what the live
// nodes do until every one installed the restore is rolled back):
//  one owner       at most one node owns a page; when none does, a sender keeps it until acked
//  lost write      the owner's (or keeping sender's) content and version equal a model that
//                  applies every acknowledged write in the order it was acknowledged
//  stale copy      every shared copy equals the model (invalidation completes before a write)
//  stale read      a read returns the model's current version and content
//  bank total      the authoritative contents sum to the opening total
//  saved content   a page reported at a cut holds the model's content at that instant
//  exactly once    a committed cut holds each page once, and sums to the total
//  core invariant  every core's checkInvariants()

export interface CheckedNode {
  id: string;
  alive: () => boolean;
  core: () => OwnershipNode<Balances, Credit>;
}

interface ModelPage { version: number; data: Balances }

export class ContainerCheckers {
  private model: ModelPage[] = [];
  recovering = false;
  readonly counts = { reads: 0, writes: 0, cuts: 0 };

  constructor(private readonly nodes: readonly CheckedNode[], private readonly apply: (d: Balances, op: Credit) => Balances) {}

  /** The job's pages are (re)installed from these images: the model starts over from them. */
  restoreModel(pages: readonly PageImage<Balances>[]): void {
    this.model = pages.map((p) => ({ version: p.version, data: p.data }));
  }

  modelImages(): PageImage<Balances>[] {
    return this.model.map((m, page) => ({ page, version: m.version, data: m.data }));
  }

  onReply(node: string, reply: UnitReply<Balances>, ops: ReadonlyArray<{ page: number; op: Credit }> | null): void {
    if (reply.kind === 'written') {
      this.counts.writes += 1;
      const touched = new Set<number>();
      for (const o of ops!) {
        const m = this.model[o.page]!;
        m.data = this.apply(m.data, o.op);
        touched.add(o.page);
      }
      for (const v of reply.versions) {
        const m = this.model[v.page]!;
        m.version += 1;
        if (!touched.has(v.page) || m.version !== v.version) throw new Violation('lost write', `${node} wrote page ${v.page} at version ${v.version}, the model is at ${m.version}`);
      }
    } else if (reply.kind === 'read') {
      this.counts.reads += 1;
      const m = this.model[reply.page]!;
      if (reply.version !== m.version || !sameBalances(reply.data, m.data)) {
        throw new Violation('stale read', `${node} read page ${reply.page} at version ${reply.version} [${reply.data.join(',')}], the last acknowledged write made it ${m.version} [${m.data.join(',')}]`);
      }
    }
  }

  /** judging: false while the job is restored or a member is dead (only the cores' own invariants hold then). */
  afterEvent(judging: boolean): void {
    for (const n of this.nodes) if (n.alive()) n.core().checkInvariants();
    if (!judging) return;
    const live = this.nodes.filter((n) => n.alive());
    const authoritative: Balances[] = [];
    for (let page = 0; page < this.model.length; page++) {
      const m = this.model[page]!;
      const owners = live.filter((n) => n.core().view(page).state.startsWith('owner'));
      if (owners.length > 1) throw new Violation('one owner', `page ${page} is owned by ${owners.map((n) => n.id).join(' and ')}`);
      let held: { version: number; data: Balances; where: string } | null = null;
      if (owners.length === 1) {
        const v = owners[0]!.core().view(page);
        held = { version: v.version, data: v.data!, where: `owner ${owners[0]!.id}` };
      } else {
        let best = -1;
        for (const n of live) for (const h of n.core().handoffs()) if (h.page === page && h.grant > best) { best = h.grant; held = { version: h.version, data: h.data, where: `sender ${n.id}` }; }
        if (!held) throw new Violation('one owner', `page ${page} has no owner and no sender keeps it`);
      }
      if (held.version !== m.version || !sameBalances(held.data, m.data)) {
        throw new Violation('lost write', `page ${page} at ${held.where} is version ${held.version} [${held.data.join(',')}], the acknowledged writes make it ${m.version} [${m.data.join(',')}]`);
      }
      authoritative.push(held.data);
      for (const n of live) {
        const v = n.core().view(page);
        if (v.state === 'shared' && (v.version !== m.version || !sameBalances(v.data!, m.data))) {
          throw new Violation('stale copy', `${n.id} holds page ${page} shared at version ${v.version} after the write that made it ${m.version}`);
        }
      }
    }
    if (sum(authoritative) !== bankTotal()) throw new Violation('bank total', `the pages sum to ${sum(authoritative)}, not ${bankTotal()}`);
  }

  /** A node reports its pages at a cut: each must be the page's current content. */
  onSaved(node: string, pages: readonly PageImage<Balances>[]): void {
    for (const p of pages) {
      const m = this.model[p.page]!;
      if (p.version !== m.version || !sameBalances(p.data, m.data)) {
        throw new Violation('saved content', `${node} saved page ${p.page} at version ${p.version}, its owner's content at the cut is version ${m.version}`);
      }
    }
  }

  onCommit(round: number, saved: ReadonlyMap<string, readonly PageImage<Balances>[]>): void {
    this.counts.cuts += 1;
    const seen = new Map<number, string>();
    for (const [node, pages] of saved) {
      for (const p of pages) {
        const other = seen.get(p.page);
        if (other !== undefined) throw new Violation('exactly once', `cut ${round} holds page ${p.page} twice: saved by ${other} and ${node}`);
        seen.set(p.page, node);
      }
    }
    for (let page = 0; page < this.model.length; page++) if (!seen.has(page)) throw new Violation('exactly once', `cut ${round} holds no copy of page ${page}`);
    const total = sum([...saved.values()].flatMap((ps) => ps.map((p) => p.data)));
    if (total !== bankTotal()) throw new Violation('bank total', `cut ${round} sums to ${total}, not ${bankTotal()}`);
  }
}
