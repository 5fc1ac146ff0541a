import { access, constants, mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer } from 'node:net';

// What keeps a service from starting, said in one line that names the bad
// value (a directory, an address, a flag), for an operator rather than a
// developer: the CLI prints a StartupError's message alone and exits 1,
// where anything else (a bug) keeps its stack. Issue 8: a data dir under a
// file, a port in use and an unavailable freezer each printed a stack; a
// read-only store was accepted and every checkpoint failed afterwards.

export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

function codeOf(err: unknown): string {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : '';
}

/** Why a path cannot be used, in words; the errno code stays in the text for a search. */
function fsReason(err: unknown): string {
  switch (codeOf(err)) {
    case 'ENOTDIR': return 'a part of the path is a file, not a directory (ENOTDIR)';
    case 'EEXIST': return 'it exists and is not a directory (EEXIST)';
    case 'EACCES': case 'EPERM': return `permission denied (${codeOf(err)})`;
    case 'EROFS': return 'the file system is read-only (EROFS)';
    case 'ENOSPC': return 'no space left on the device (ENOSPC)';
    case 'ENOENT': return 'a part of the path does not exist (ENOENT)';
    default: return err instanceof Error ? err.message : String(err);
  }
}

/** mkdir -p, or a StartupError naming the directory and its role (e.g. "data dir"). */
export async function ensureDir(role: string, dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new StartupError(`cannot use ${role} ${dir}: ${fsReason(err)}`, { cause: err });
  }
}

/**
 * Checks that a directory takes a new file (created, written, fsynced and
 * removed): a permission check alone passes for root on a read-only mount,
 * and a store that takes no write fails every checkpoint later.
 */
export async function ensureWritable(role: string, dir: string): Promise<void> {
  await ensureDir(role, dir);
  const probe = join(dir, `.gridckpt-write-probe-${process.pid}`);
  try {
    await access(dir, constants.W_OK);
    const f = await open(probe, 'w', 0o600);
    try {
      await f.writeFile('probe');
      await f.sync();
    } finally {
      await f.close();
    }
  } catch (err) {
    throw new StartupError(`${role} ${dir} is not writable: ${fsReason(err)}`, { cause: err });
  } finally {
    await rm(probe, { force: true }).catch(() => undefined);
  }
}

/** Runs a listen; an address in use (or not ours to bind) becomes a StartupError naming it and its role. */
export async function listening<T>(role: string, address: string, listen: () => Promise<T>): Promise<T> {
  try {
    // grpc-js logs its own failed bind to stderr before it rejects ("E No address added ..."): a fixed
    // port is tried first with node:net, so an address in use is told in our line alone. (A race with
    // another process between the two binds still ends in the same refusal, after grpc-js's line.)
    await probeTcp(address);
    return await listen();
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    // grpc-js reports a failed bind as text ("... EADDRINUSE ..."), node:net as a code.
    const code = codeOf(err) || (/EADDRINUSE|EACCES|EADDRNOTAVAIL/.exec(text)?.[0] ?? '');
    const why = code === 'EADDRINUSE' ? 'the address is already in use (EADDRINUSE): another process listens there; pick another port, or port 0 for any free one'
      : code === 'EACCES' ? 'permission denied (EACCES): a port below 1024 needs privileges'
        : code === 'EADDRNOTAVAIL' ? 'no interface of this host has that address (EADDRNOTAVAIL)'
          : text;
    throw new StartupError(`cannot listen on ${address} (${role}): ${why}`, { cause: err });
  }
}

/** Binds and releases host:port when the port is fixed (0 and unix: paths are left to the real bind). */
async function probeTcp(address: string): Promise<void> {
  const idx = address.lastIndexOf(':');
  const port = Number(address.slice(idx + 1));
  if (address.startsWith('unix:') || idx < 0 || !Number.isInteger(port) || port === 0) return;
  const host = address.slice(0, idx).replace(/^\[|\]$/g, '');
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => resolve());
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
