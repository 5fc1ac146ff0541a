import { invalidArgument } from './errors.js';

/** A listen or peer address: host:port (IPv6 in brackets). */
export function checkHostPort(what: string, value: string): string {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) > 65535) {
    throw invalidArgument(`bad ${what} ${JSON.stringify(value)}: expected host:port, e.g. 127.0.0.1:7070`);
  }
  return value;
}
