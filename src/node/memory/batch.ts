import { invalidArgument } from '../../common/errors.js';
import { checkIndex, checkPage, checkRange, describeValue, resourceExhausted } from './checks.js';
import type { PageTable } from './page-table.js';
import { PAGE_BYTES } from './swap-port.js';
import type { PageOp } from './types.js';

// Validation of a write batch, all of it before any write is applied: this
// is what makes applyBatch atomic for bad input. The result names the page
// tables directly so applying needs no second lookup.

export interface ResolvedWrite {
  table: PageTable;
  page: number;
  offset: number;
  op: PageOp;
}

export interface BatchLimits {
  maxBatchWrites: number;
  maxBatchBytes: number;
  /** Every page a batch touches must be resident at once while it applies. */
  framesTotal: number;
}

export interface ValidatedBatch {
  writes: ResolvedWrite[];
  /** Each distinct page once, in first-touch order. */
  pages: { table: PageTable; page: number }[];
}

const I64_BYTES = 8;

export function validateBatch(
  writes: unknown,
  lookup: (container: string) => PageTable,
  limits: BatchLimits,
): ValidatedBatch {
  if (!Array.isArray(writes)) throw invalidArgument('batch must be an array of writes');
  if (writes.length > limits.maxBatchWrites) {
    throw invalidArgument(`batch of ${writes.length} writes exceeds maxBatchWrites ${limits.maxBatchWrites}`);
  }
  const resolved: ResolvedWrite[] = [];
  const pages: { table: PageTable; page: number }[] = [];
  const seen = new Set<number>();
  let bytes = 0;
  for (let i = 0; i < writes.length; i += 1) {
    let w: ResolvedWrite;
    try {
      w = validateWrite(writes[i], lookup);
    } catch (e) {
      if (writes.length > 1 && e instanceof Error) e.message = `write ${i} of ${writes.length}: ${e.message}`;
      throw e;
    }
    bytes += w.op.kind === 'data' ? w.op.data.length : I64_BYTES;
    resolved.push(w);
    // Table ids are small and pages < 2^31, so this key is exact.
    const key = w.table.id * 2 ** 31 + w.page;
    if (!seen.has(key)) {
      seen.add(key);
      pages.push({ table: w.table, page: w.page });
    }
  }
  if (bytes > limits.maxBatchBytes) {
    throw invalidArgument(`batch of ${bytes} bytes exceeds maxBatchBytes ${limits.maxBatchBytes}`);
  }
  if (pages.length > limits.framesTotal) {
    throw resourceExhausted(
      `batch touches ${pages.length} distinct pages but the memory budget holds only ${limits.framesTotal} frames`,
    );
  }
  return { writes: resolved, pages };
}

function validateWrite(raw: unknown, lookup: (container: string) => PageTable): ResolvedWrite {
  if (typeof raw !== 'object' || raw === null) throw invalidArgument(`bad write ${describeValue(raw)}`);
  const w = raw as Record<string, unknown>;
  if (typeof w.container !== 'string') throw invalidArgument(`bad container name ${describeValue(w.container)}`);
  const table = lookup(w.container);
  const page = checkPage(table, w.page);
  const offset = checkIndex('offset', w.offset);
  const op = w.op as Record<string, unknown> | null | undefined;
  if (typeof op !== 'object' || op === null) throw invalidArgument(`bad write op ${describeValue(op)}`);
  switch (op.kind) {
    case 'data': {
      if (!(op.data instanceof Uint8Array)) throw invalidArgument('data write needs a Uint8Array');
      checkRange(offset, op.data.length);
      return { table, page, offset, op: { kind: 'data', data: op.data } };
    }
    case 'add-i64': {
      if (typeof op.delta !== 'bigint') throw invalidArgument(`add-i64 needs a bigint delta, got ${describeValue(op.delta)}`);
      if (offset + I64_BYTES > PAGE_BYTES) throw invalidArgument(`add-i64 at offset ${offset} needs ${I64_BYTES} bytes`);
      return { table, page, offset, op: { kind: 'add-i64', delta: op.delta } };
    }
    default:
      throw invalidArgument(`unknown write kind ${describeValue(op.kind)}`);
  }
}
