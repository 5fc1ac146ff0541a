import type { SeededRng } from '../../runtime/rng.js';

// The containers scenario's bank: accounts laid on shared pages (a page's
// content is its accounts' balances), and the ops its units draw: reads of a
// page and transfers between two random accounts, an atomic batch over one
// or two pages. Transfers keep the total, so every cut must sum to it.

export type Balances = readonly number[];

export interface Credit { slot: number; delta: number }

export const BANK = {
  nodes: 4,
  unitsPerNode: 2,
  pageCount: 12,
  accountsPerPage: 4,
  /** Pages per manager range: small, so that every node manages some pages. */
  rangePages: 2,
  opening: 100,
  readShare: 0.35,
  maxAmount: 10,
};

export function applyCredit(data: Balances, op: Credit): Balances {
  const next = data.slice();
  next[op.slot] = next[op.slot]! + op.delta;
  return next;
}

export function openingPages(): Balances[] {
  return Array.from({ length: BANK.pageCount }, () => Array.from({ length: BANK.accountsPerPage }, () => BANK.opening));
}

export function bankTotal(): number {
  return BANK.pageCount * BANK.accountsPerPage * BANK.opening;
}

export function sum(pages: Iterable<Balances>): number {
  let t = 0;
  for (const p of pages) for (const b of p) t += b;
  return t;
}

export function sameBalances(a: Balances, b: Balances): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export type BankOp =
  | { kind: 'read'; page: number }
  | { kind: 'write'; ops: Array<{ page: number; op: Credit }> };

export function drawOp(rng: SeededRng): BankOp {
  const accounts = BANK.pageCount * BANK.accountsPerPage;
  if (rng.next() < BANK.readShare) return { kind: 'read', page: rng.int(BANK.pageCount) };
  const a = rng.int(accounts);
  let b = rng.int(accounts - 1);
  if (b >= a) b += 1;
  const amount = 1 + rng.int(BANK.maxAmount);
  const at = (acct: number, delta: number) => ({ page: Math.floor(acct / BANK.accountsPerPage), op: { slot: acct % BANK.accountsPerPage, delta } });
  return { kind: 'write', ops: [at(a, -amount), at(b, amount)] };
}
