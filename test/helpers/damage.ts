import { open, rm, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { epochDir } from '../../src/store/index.js';
import { listCommitted } from '../../src/store/index.js';

// Damage to a committed epoch, as a disk or an operator does it: a flipped
// byte in a page, a truncated page table, a deleted manifest.

/** A part with pages (withData: with page bytes in its data file — zero pages have none). */
async function partWithPages(store: string, jobId: string, epoch: bigint, withData = false) {
  const m = (await listCommitted(store, jobId)).find((x) => x.epoch === epoch);
  if (!m) throw new Error(`epoch ${epoch} of ${jobId} is not committed in ${store}`);
  const part = m.parts.find((p) => p.pageCount > 0 && (!withData || p.dataBytes > 0));
  if (!part) throw new Error(`epoch ${epoch} of ${jobId} in ${store} has no page`);
  return { dir: epochDir(store, jobId, epoch), part };
}

export async function flipPageByte(store: string, jobId: string, epoch: bigint): Promise<void> {
  const { dir, part } = await partWithPages(store, jobId, epoch, true);
  const fh = await open(join(dir, part.dataFile), 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 17);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, 17);
  } finally {
    await fh.close();
  }
}

export async function truncatePageTable(store: string, jobId: string, epoch: bigint): Promise<void> {
  const { dir, part } = await partWithPages(store, jobId, epoch);
  const file = join(dir, part.tableFile);
  await truncate(file, Math.floor((await stat(file)).size / 2));
}

export async function deleteManifest(store: string, jobId: string, epoch: bigint): Promise<void> {
  await rm(join(epochDir(store, jobId, epoch), 'MANIFEST.json'));
}
