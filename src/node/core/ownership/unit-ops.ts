import type { Holdings } from './holdings.js';
import type { UnitReply, Want } from './types.js';

// The unit ops a node is serving: reads and atomic batches, in arrival order.
// A batch takes its pages in ascending page order and pins each one it
// holds exclusively; a pinned page is not given away (forwards for it wait)
// until the batch applies all its ops in one step. Because every batch
// waits only for pages above those it pins, no two batches wait on each
// other in a cycle (deadlock freedom, docs/ownership.md). Pins outlive a
// checkpoint's gate: the cut saves a pinned page as it was before the batch
// (which has applied nothing, so nothing is split), and a forward for it is
// refused back to its manager rather than waited for (the drain must end).

export type UnitOp<W> =
  | { kind: 'read'; reqId: number; page: number }
  | { kind: 'write'; reqId: number; ops: Array<{ page: number; op: W }>; pages: number[] };

export interface OpsCtx<D, W> {
  holdings: Holdings<D>;
  pins: Map<number, number>;
  apply: (data: D, op: W) => D;
  /** Sends a request for the page unless one is out (or the gate is closed). */
  request: (page: number, want: Want) => void;
  reply: (r: UnitReply<D>) => void;
  /** A pinned page was released: forwards that waited for it are served. */
  released: (page: number) => void;
}

/** One pass over the waiting ops in arrival order; returns those still waiting. */
export function pump<D, W>(cx: OpsCtx<D, W>, waiting: readonly UnitOp<W>[]): UnitOp<W>[] {
  const left: UnitOp<W>[] = [];
  for (const op of waiting) {
    const done = op.kind === 'read' ? serveRead(cx, op) : advanceBatch(cx, op);
    if (!done) left.push(op);
  }
  return left;
}

function serveRead<D, W>(cx: OpsCtx<D, W>, op: Extract<UnitOp<W>, { kind: 'read' }>): boolean {
  const c = cx.holdings.get(op.page);
  if (c.state === 'invalid') {
    cx.request(op.page, 'read');
    return false;
  }
  cx.reply({ reqId: op.reqId, kind: 'read', page: op.page, version: c.version, data: c.data! });
  return true;
}

function advanceBatch<D, W>(cx: OpsCtx<D, W>, op: Extract<UnitOp<W>, { kind: 'write' }>): boolean {
  for (const p of op.pages) {
    const pin = cx.pins.get(p);
    if (pin === op.reqId) continue;
    if (pin !== undefined) return false;
    if (cx.holdings.get(p).state !== 'owner-exclusive') {
      cx.request(p, 'write');
      return false;
    }
    cx.pins.set(p, op.reqId);
  }
  const versions: Array<{ page: number; version: number }> = [];
  for (const p of op.pages) {
    const c = cx.holdings.get(p);
    let data = c.data as D;
    for (const o of op.ops) if (o.page === p) data = cx.apply(data, o.op);
    cx.holdings.set(p, { state: 'owner-exclusive', version: c.version + 1, data });
    versions.push({ page: p, version: c.version + 1 });
  }
  for (const p of op.pages) cx.pins.delete(p);
  cx.reply({ reqId: op.reqId, kind: 'written', versions });
  for (const p of op.pages) cx.released(p);
  return true;
}
