import { invalidArgument } from './errors.js';

// Job, unit and container names end up in file names, cgroup paths and
// metric-free log lines, so they are restricted to a safe alphabet.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function checkName(what: string, value: string): string {
  if (!NAME_PATTERN.test(value)) {
    throw invalidArgument(
      `bad ${what} ${JSON.stringify(value)}: use 1-63 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit`,
    );
  }
  return value;
}
