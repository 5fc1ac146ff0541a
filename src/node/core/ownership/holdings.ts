import type { PageImage, PageState } from './types.js';

// What one node holds of a job's pages: its copy of each page (state,
// version, content), the newest grant it has seen per page (so a resent or
// late transfer is recognized and only acknowledged again), and the pages it
// has sent but that are not yet acknowledged: a sender keeps the page, and
// sends it again every retransmitMs, until the receiver says it has it.

export interface Copy<D> {
  state: PageState;
  version: number;
  data: D | null;
}

export interface Handoff<D> {
  page: number;
  to: string;
  grant: number;
  /** The requester's id (null for an eviction): a resent copy must resolve the request like the first. */
  reqId: number | null;
  version: number;
  data: D;
  exclusive: boolean;
  nextSendMs: number;
}

export class Holdings<D> {
  private readonly copies = new Map<number, Copy<D>>();
  private readonly lastGrant = new Map<number, number>();
  readonly handoffs = new Map<string, Handoff<D>>();

  reset(pages: readonly PageImage<D>[]): void {
    this.copies.clear();
    this.lastGrant.clear();
    this.handoffs.clear();
    for (const p of pages) this.copies.set(p.page, { state: 'owner-exclusive', version: p.version, data: p.data });
  }

  get(page: number): Copy<D> {
    return this.copies.get(page) ?? { state: 'invalid', version: 0, data: null };
  }

  set(page: number, copy: Copy<D>): void {
    if (copy.state === 'invalid') this.copies.delete(page);
    else this.copies.set(page, copy);
  }

  isOwner(page: number): boolean {
    const s = this.get(page).state;
    return s === 'owner-exclusive' || s === 'owner-shared';
  }

  /** True the first time a grant of this page is seen (grants grow per page within an epoch). */
  fresh(page: number, grant: number): boolean {
    if (grant <= (this.lastGrant.get(page) ?? 0)) return false;
    this.lastGrant.set(page, grant);
    return true;
  }

  /** Pages this node owns, in page order, with their content: what it saves at a cut. */
  owned(): PageImage<D>[] {
    const out: PageImage<D>[] = [];
    for (const [page, c] of this.copies) if (c.state === 'owner-exclusive' || c.state === 'owner-shared') out.push({ page, version: c.version, data: c.data! });
    return out.sort((a, b) => a.page - b.page);
  }

  entries(): IterableIterator<[number, Copy<D>]> {
    return this.copies.entries();
  }
}
