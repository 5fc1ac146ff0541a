import { createHash } from 'node:crypto';

// A digest of final balances that a reference run and a real run can compare.
export function balancesDigest(balances: bigint[]): string {
  const buf = Buffer.alloc(balances.length * 8);
  balances.forEach((b, i) => buf.writeBigInt64LE(b, i * 8));
  return createHash('sha256').update(buf).digest('hex');
}
