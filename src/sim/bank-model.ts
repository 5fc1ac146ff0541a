// The simulated application: each unit runs its own small bank (the per-unit
// sub-bank of the real cluster bank job). Op k moves an amount between two
// of its accounts chosen from (unit, k) alone, so the final state is a pure
// function of the unit and its op count: a run with failures and recoveries
// must end in the same state as a failure-free one (ARCHITECTURE §3.5), and
// the total is conserved at every epoch.

export interface UnitState {
  op: number;
  bal: readonly number[];
}

export const ACCOUNTS = 4;
export const OPENING = 1000;

export function initialState(): UnitState {
  return { op: 0, bal: Array.from({ length: ACCOUNTS }, () => OPENING) };
}

function mix(unit: string, k: number): number {
  let h = 0x811c9dc5 ^ k;
  for (let i = 0; i < unit.length; i++) h = Math.imul(h ^ unit.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  return (h ^ (h >>> 12)) >>> 0;
}

export function applyOp(unit: string, s: UnitState): UnitState {
  const r = mix(unit, s.op);
  const from = r % ACCOUNTS;
  const to = (from + 1 + ((r >>> 8) % (ACCOUNTS - 1))) % ACCOUNTS;
  const amount = Math.min(s.bal[from]!, (r >>> 16) % 50);
  const bal = [...s.bal];
  bal[from] = bal[from]! - amount;
  bal[to] = bal[to]! + amount;
  return { op: s.op + 1, bal };
}

export function finalState(unit: string, ops: number): UnitState {
  let s = initialState();
  for (let i = 0; i < ops; i++) s = applyOp(unit, s);
  return s;
}

export function sameState(a: UnitState, b: UnitState): boolean {
  return a.op === b.op && a.bal.length === b.bal.length && a.bal.every((x, i) => x === b.bal[i]);
}

export function total(s: UnitState): number {
  return s.bal.reduce((a, b) => a + b, 0);
}
