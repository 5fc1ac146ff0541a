// The few file-system steps the store needs, each durable when it returns.
// A file's bytes survive a crash only after fsync of the file; its name only
// after fsync of the directory holding it; a rename is the one atomic step
// (POSIX) that makes a fully written file appear under its final name.
// Invariants:
//   1. writeFileSynced and writeThenSync return only after fsync of the file.
//   2. ensureDirDurable fsyncs the parent of every directory it creates.
//   3. renameDurable fsyncs the target's directory after the rename.
// Environment failures (ENOSPC, EIO) are thrown as they are: the caller's edge
// turns them into inputs.

import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** fsync a file or a directory by path. */
export async function fsyncPath(target: string): Promise<void> {
  const fh = await open(target, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes bytes [offset, offset+length) of buf at file position `position`, looping on short writes. */
export async function writeAll(fh: FileHandle, buf: Uint8Array, offset: number, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await fh.write(buf, offset + done, length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`write returned ${bytesWritten} bytes`);
    done += bytesWritten;
  }
}

/** Creates `dir` and any missing ancestors; fsyncs the parent of each one created. */
export async function ensureDirDurable(dir: string): Promise<void> {
  const missing: string[] = [];
  let current = path.resolve(dir);
  for (;;) {
    try {
      const st = await stat(current);
      if (!st.isDirectory()) throw new Error(`${current} exists and is not a directory`);
      break;
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
      missing.push(current);
      const parent = path.dirname(current);
      if (parent === current) break;
      current = parent;
    }
  }
  for (const created of missing.reverse()) {
    try {
      await mkdir(created);
    } catch (err) {
      // Another writer (a peer agent writing its part) won the race; its entry
      // may not be durable yet, so the parent is fsynced below all the same.
      if (!isErrno(err, 'EEXIST')) throw err;
    }
    await fsyncPath(path.dirname(created));
  }
}

/** Creates or truncates `file`, writes `data` in one call (looping on short writes), fsyncs it. */
export async function writeFileSynced(file: string, data: Uint8Array): Promise<void> {
  await writeThenSync(file, (fh) => writeAll(fh, data, 0, data.byteLength, 0), async () => {});
}

/**
 * Creates or truncates `file`, lets `produce` write it (positional writes on
 * the handle, e.g. writeAll), then runs `whileSyncing` on this thread while
 * the file's fsync runs on the I/O pool: CPU work that needs the bytes
 * written, not durable, hides behind the disk. Resolves with its result once
 * both are done; the file is durable then. Nothing is left in flight.
 */
export async function writeThenSync<T>(file: string, produce: (fh: FileHandle) => Promise<void>, whileSyncing: () => Promise<T>): Promise<T> {
  const fh = await open(file, 'w');
  try {
    await produce(fh);
    const synced = fh.sync();
    synced.catch(() => {}); // awaited below; this only keeps a failure from counting as unhandled meanwhile
    try {
      return await whileSyncing();
    } finally {
      await synced;
    }
  } finally {
    await fh.close();
  }
}

/** Atomically replaces `to` by `from` and makes the new name durable. */
export async function renameDurable(from: string, to: string): Promise<void> {
  await rename(from, to);
  await fsyncPath(path.dirname(to));
}

/** Removes a directory tree and makes its removal durable. */
export async function removeTreeDurable(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await fsyncPath(path.dirname(dir));
}
