import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GridError } from '../common/errors.js';
import { ensureDirDurable, renameDurable, writeFileSynced, isErrno } from './durable-fs.js';

// A small JSON file replaced whole: written to a temporary file, fsynced,
// renamed into place and the directory fsynced, so a crash at any instant
// leaves the old content or the new, never a torn file. Updates run one at a
// time in call order, each on the content the previous one left. Bigints are
// written as decimal strings (parse turns them back).

export class DurableJson<T> {
  private queue: Promise<void> = Promise.resolve();

  private constructor(readonly path: string, private value: T) {}

  /** empty: the content when the file does not exist yet; parse: checks what was read (throws if unusable). */
  static async open<T>(dir: string, name: string, parse: (raw: unknown) => T, empty: () => T): Promise<DurableJson<T>> {
    await ensureDirDurable(dir);
    const path = join(dir, name);
    try {
      return new DurableJson(path, parse(JSON.parse(await readFile(path, 'utf8')) as unknown));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return new DurableJson(path, empty());
      throw new GridError('data-loss', `${path} is unreadable: ${(err as Error).message}`);
    }
  }

  get current(): T {
    return this.value;
  }

  update(change: (current: T) => T): Promise<void> {
    const run = this.queue.then(async () => {
      const next = change(this.value);
      const body = JSON.stringify(next, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      const tmp = `${this.path}.tmp`;
      await writeFileSynced(tmp, Buffer.from(body));
      await renameDurable(tmp, this.path);
      this.value = next;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}
