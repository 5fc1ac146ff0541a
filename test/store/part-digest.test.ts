// The digest a participant answers with PREPARED (part-digest.ts) is the
// tableDigest its part gets when written (invariant 1), so the round core can
// compare them; any change to the staged bytes, the page list's order or a
// version between prepare and write shows as a different digest.

import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sha256Hex } from '../../src/store/manifest.js';
import { PAGE_BYTES, epochDir, stagedPartDigest, writeNodePart } from '../../src/store/index.js';
import { makeStoreDir, stage } from './helpers.js';

let store: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir: store, cleanup } = await makeStoreDir()));
afterEach(async () => cleanup());

describe('stagedPartDigest (part-digest.ts invariant 1)', () => {
  it('equals the tableDigest of the part written from the same staging, and the sha256 of its table file', async () => {
    await fc.assert(fc.asyncProperty(
      fc.uniqueArray(fc.tuple(fc.constantFrom('bank', 'log', 'x'), fc.integer({ min: 0, max: 40 })), {
        minLength: 0, maxLength: 24, selector: ([c, p]) => `${c}#${p}`,
      }),
      fc.bigInt({ min: 1n, max: 1000n }),
      async (pages, epoch) => {
        const staged = stage(epoch, pages);
        const prepared = await stagedPartDigest({ epoch, ...staged });
        const part = await writeNodePart({ storeDir: store, jobId: 'job', epoch, nodeId: 'n1', ...staged });
        expect(prepared).toBe(part.tableDigest);
        // A part of no pages has no table file: its digest is the sha256 of no bytes (invariant 3).
        const onDisk = pages.length === 0 ? new Uint8Array(0) : await readFile(path.join(epochDir(store, 'job', epoch), part.tableFile));
        expect(sha256Hex(onDisk)).toBe(prepared);
      },
    ), { numRuns: 25 });
  });

  it('differs when a staged byte, the order of the pages or a version differs', async () => {
    const epoch = 3n;
    const staged = stage(epoch, [['bank', 0], ['bank', 1], ['log', 7]]);
    const base = await stagedPartDigest({ epoch, ...staged });
    expect(base).toMatch(/^[0-9a-f]{64}$/);

    const flipped = Uint8Array.from(staged.staging);
    flipped[PAGE_BYTES + 17]! ^= 1;
    expect(await stagedPartDigest({ epoch, staging: flipped, pages: staged.pages })).not.toBe(base);

    const reordered = [staged.pages[1]!, staged.pages[0]!, staged.pages[2]!];
    expect(await stagedPartDigest({ epoch, staging: staged.staging, pages: reordered })).not.toBe(base);

    const bumped = staged.pages.map((p, i) => (i === 2 ? { ...p, version: p.version + 1n } : p));
    expect(await stagedPartDigest({ epoch, staging: staged.staging, pages: bumped })).not.toBe(base);

    expect(await stagedPartDigest({ epoch: 4n, ...staged })).not.toBe(base);
    expect(await stagedPartDigest({ epoch, ...staged })).toBe(base); // deterministic
  });

  it('refuses a page list that does not fill staging, as the writer does', async () => {
    const staged = stage(1n, [['bank', 0], ['bank', 1]]);
    await expect(stagedPartDigest({ epoch: 1n, staging: staged.staging.subarray(0, PAGE_BYTES), pages: staged.pages }))
      .rejects.toThrow(/staging holds 4096 bytes but 2 pages need exactly 8192/);
  });
});
