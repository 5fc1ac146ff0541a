import { createHash } from 'node:crypto';
import { createConnection, createServer, type Server } from 'node:net';
import type { TimerPort } from '../runtime/ports.js';

// An exclusive, host-wide lock held for a process's lifetime: a listening
// Unix socket in Linux's abstract namespace (a name starting with NUL).
//
// Why this and not a pid file: the kernel frees an abstract name the moment
// its holder's socket is closed — on a clean exit, on a crash and on kill -9
// alike — so there is never a stale lock to clean up by hand, and taking it
// is one atomic bind (two processes racing for a stale pid file can both
// "take it over"; two binds cannot both succeed). Node creates sockets
// close-on-exec, so the units an agent spawns never inherit it. Whoever
// fails to bind connects and reads the holder's one JSON line (pid, what
// it holds), so the refusal can name the pid. The namespace is per network
// namespace: agents in different containers with their own network
// namespaces do not see each other's locks (they have no shared data dir or
// cgroup scope either, unless mounted in: then use one network namespace).

export interface LockHolder {
  pid: number;
  /** What the holder said it holds (free text for the refusal). */
  what: string;
}

export class HostLockBusy extends Error {
  constructor(readonly key: string, readonly holder: LockHolder | null) {
    super(`lock ${key} is held by ${holder ? `pid ${holder.pid}` : 'another process'}`);
    this.name = 'HostLockBusy';
  }
}

export interface HostLock {
  release(): Promise<void>;
}

/** The abstract socket name for a key (hashed: the name is bounded to 107 bytes, keys are not). */
function socketName(key: string): string {
  return `\0gridckpt-lock-${createHash('sha256').update(key).digest('hex').slice(0, 40)}`;
}

/**
 * Takes the lock named by key, or throws HostLockBusy naming the holder's pid.
 * what: told to a process that finds the lock held (e.g. "node n1, data dir /x").
 */
export async function takeHostLock(key: string, what: string, timers: TimerPort, askTimeoutMs = 2_000): Promise<HostLock> {
  const name = socketName(key);
  const banner = `${JSON.stringify({ pid: process.pid, what })}\n`;
  const server: Server = createServer((sock) => {
    sock.on('error', () => undefined);
    sock.end(banner);
  });
  const bound = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ path: name }, () => resolve(null));
  });
  if (bound !== null) {
    if (bound.code !== 'EADDRINUSE') throw bound;
    throw new HostLockBusy(key, await askHolder(name, timers, askTimeoutMs));
  }
  // The server must not keep the process alive on its own.
  server.unref();
  return { release: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Reads the holder's banner; null if it does not answer in time (stopped, or overloaded). */
function askHolder(name: string, timers: TimerPort, timeoutMs: number): Promise<LockHolder | null> {
  return new Promise((resolve) => {
    let text = '';
    let done = false;
    const finish = (h: LockHolder | null): void => {
      if (done) return;
      done = true;
      timers.clearTimer(timer);
      sock.destroy();
      resolve(h);
    };
    const timer = timers.setTimer(() => finish(null), timeoutMs);
    const sock = createConnection({ path: name });
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      text += d;
      if (text.length > 4096) finish(null);
    });
    sock.on('end', () => {
      try {
        const h = JSON.parse(text) as { pid?: unknown; what?: unknown };
        finish(typeof h.pid === 'number' ? { pid: h.pid, what: typeof h.what === 'string' ? h.what : '' } : null);
      } catch {
        finish(null);
      }
    });
    sock.on('error', () => finish(null));
  });
}
