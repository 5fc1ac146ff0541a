import { readFile, writeFile, rename, open } from 'node:fs/promises';
import { join } from 'node:path';

// A process's incarnation: read from its data directory, bumped and made
// durable before the process serves anything, so that messages from an
// earlier life can be told apart (CONVENTIONS §4).

export async function bumpIncarnation(dataDir: string): Promise<bigint> {
  const path = join(dataDir, 'incarnation');
  let previous = 0n;
  try {
    const text = (await readFile(path, 'utf8')).trim();
    if (/^\d+$/.test(text)) previous = BigInt(text);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const next = previous + 1n;
  const tmp = `${path}.tmp`;
  await writeFile(tmp, `${next}\n`);
  const fh = await open(tmp, 'r+');
  await fh.sync();
  await fh.close();
  await rename(tmp, path);
  const dir = await open(dataDir, 'r');
  await dir.sync();
  await dir.close();
  return next;
}
