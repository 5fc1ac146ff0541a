import { invalidArgument } from './errors.js';

// Job, unit and container names end up in file names, cgroup paths and
// metric-free log lines, so they are restricted to a safe alphabet.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * A value echoed back in an error, quoted and cut to this many characters:
 * a caller that sent a megabyte-long id gets a readable refusal, not its
 * megabyte back (and a log line stays a line).
 */
export const MAX_ECHOED_CHARS = 80;

/** JSON-quotes a value for an error message, cut to MAX_ECHOED_CHARS with its full length named. */
export function quoteValue(value: string): string {
  if (value.length <= MAX_ECHOED_CHARS) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, MAX_ECHOED_CHARS))}… (${value.length} characters)`;
}

export function checkName(what: string, value: string): string {
  if (typeof value !== 'string' || !NAME_PATTERN.test(value)) {
    throw invalidArgument(
      `bad ${what} ${quoteValue(String(value))}: use 1-63 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit`,
    );
  }
  return value;
}
