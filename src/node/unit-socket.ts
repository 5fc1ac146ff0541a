import { lstat, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { GridError } from '../common/errors.js';

// The unit API's socket path is cleared before the agent binds it, but only
// of a stale socket: `--unit-socket` pointed at a regular file (a typo, a
// path shared with something else) must never delete that file, and a socket
// another live process serves is not ours to take.

export async function removeStaleSocket(path: string): Promise<void> {
  let kind: 'socket' | 'other';
  try {
    kind = (await lstat(path)).isSocket() ? 'socket' : 'other';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (kind === 'other') {
    throw new GridError('failed-precondition', `unit socket path ${path} exists and is not a socket: refusing to delete it (choose another --unit-socket)`);
  }
  if (await isServed(path)) throw new GridError('failed-precondition', `unit socket ${path} is served by another live process: refusing to take it over`);
  await rm(path, { force: true });
}

/** Whether a process accepts connections on the socket (a stale one refuses them: ECONNREFUSED). */
function isServed(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
