// Printing for the CLI: JSON (bigints as strings) or short human lines, and
// the error path: a message naming the bad value, exit code 2 for bad input.

export class UsageError extends Error {}

export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${toJson(value)}\n`);
}

export function line(text: string): void {
  process.stdout.write(`${text}\n`);
}

export function parseEpochFlag(text: string | undefined): bigint {
  if (text === undefined || text === 'latest') return 0n;
  if (!/^\d{1,19}$/.test(text) || BigInt(text) === 0n) {
    throw new UsageError(`bad epoch ${JSON.stringify(text)}: expected a positive integer or "latest"`);
  }
  return BigInt(text);
}

export function parseIntFlag(what: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`bad ${what} ${JSON.stringify(text)}: expected an integer from ${min} to ${max}`);
  }
  return n;
}

/** One JSON object on one line (bigints as strings), for streams of records. */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}
