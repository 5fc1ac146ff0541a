// The bank sample job, pure part: layout, the deterministic transfers and
// the failure-free reference.
//
// N accounts of signed 64-bit balances fill the first pages of container
// "bank"; each unit's op counter follows, one 8-byte slot per unit. A fresh
// container is zero-filled, so a stored balance is the account's change from
// its opening balance (OPENING_BALANCE): the total is N × OPENING_BALANCE at
// every consistent state. Transfer k of unit u depends only on (seed, u, k)
// and is applied as one atomic batch (debit, credit, counter = k + 1), so
// the final balances do not depend on how units interleave or restart.

export const PAGE_BYTES = 4096;
export const CONTAINER = 'bank';
export const OPENING_BALANCE = 1000n;
const SLOTS_PER_PAGE = PAGE_BYTES / 8;

export interface BankParams {
  accounts: number;
  units: number;
  opsPerUnit: number;
  seed: number;
}

export interface Slot {
  page: number;
  offset: number;
}

export function accountPages(p: BankParams): number {
  return Math.ceil(p.accounts / SLOTS_PER_PAGE);
}

export function pageCount(p: BankParams): number {
  return accountPages(p) + Math.ceil(p.units / SLOTS_PER_PAGE);
}

export function accountSlot(account: number): Slot {
  return { page: Math.floor(account / SLOTS_PER_PAGE), offset: (account % SLOTS_PER_PAGE) * 8 };
}

export function counterSlot(p: BankParams, unitIndex: number): Slot {
  return { page: accountPages(p) + Math.floor(unitIndex / SLOTS_PER_PAGE), offset: (unitIndex % SLOTS_PER_PAGE) * 8 };
}

export interface Transfer {
  from: number;
  to: number;
  amount: bigint;
}

const MASK64 = (1n << 64n) - 1n;

/** splitmix64: a tiny, well-mixed PRNG step. */
function splitmix64(x: bigint): bigint {
  let z = (x + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

export function transfer(p: BankParams, unitIndex: number, op: number): Transfer {
  const r = splitmix64((BigInt(p.seed) << 40n) ^ (BigInt(unitIndex) << 32n) ^ BigInt(op));
  const r2 = splitmix64(r);
  const n = BigInt(p.accounts);
  return { from: Number(r % n), to: Number(r2 % n), amount: 1n + ((r >> 17n) % 100n) };
}

/** Final balances of a failure-free run, computed without any agent. */
export function referenceBalances(p: BankParams): bigint[] {
  const balances = new Array<bigint>(p.accounts).fill(OPENING_BALANCE);
  for (let u = 0; u < p.units; u++) {
    for (let k = 0; k < p.opsPerUnit; k++) {
      const t = transfer(p, u, k);
      balances[t.from]! -= t.amount;
      balances[t.to]! += t.amount;
    }
  }
  return balances;
}

/** Balances and counters read out of the container's pages. */
export function decodeBank(p: BankParams, page: (index: number) => Uint8Array): { balances: bigint[]; counters: number[] } {
  const balances: bigint[] = [];
  for (let a = 0; a < p.accounts; a++) {
    const s = accountSlot(a);
    const bytes = page(s.page);
    balances.push(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigInt64(s.offset, true) + OPENING_BALANCE);
  }
  const counters: number[] = [];
  for (let u = 0; u < p.units; u++) {
    const s = counterSlot(p, u);
    const bytes = page(s.page);
    counters.push(Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(s.offset, true)));
  }
  return { balances, counters };
}

export function totalOf(balances: bigint[]): bigint {
  return balances.reduce((a, b) => a + b, 0n);
}

export function expectedTotal(p: BankParams): bigint {
  return BigInt(p.accounts) * OPENING_BALANCE;
}

export function validateParams(p: BankParams): BankParams {
  const check = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) throw new Error(`bad bank ${name} ${v}: expected an integer from ${min} to ${max}`);
  };
  check('accounts', p.accounts, 2, 16_777_216);
  check('units', p.units, 1, 512);
  check('ops', p.opsPerUnit, 0, 1_000_000_000);
  check('seed', p.seed, 0, 0xffffff);
  return p;
}
