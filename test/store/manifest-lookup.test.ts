// lookupManifest reuses a parse only for the very same bytes (epoch-catalog.ts
// invariant 4): a manifest changed in place right after it was read, at the
// same size, is judged anew; what it hands out is frozen.

import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { epochDir } from '../../src/store/index.js';
import { lookupManifest } from '../../src/store/epoch-catalog.js';
import { makeStoreDir, range, writeEpoch } from './helpers.js';

let store: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir: store, cleanup } = await makeStoreDir()));
afterEach(async () => cleanup());

describe('lookupManifest', () => {
  it('gives the same frozen manifest for unchanged bytes, and judges changed bytes anew at once', async () => {
    await writeEpoch(store, 'job', 1n, null, { 'node-a': range(0, 4).map((p) => ['bank', p] as [string, number]) });
    const first = await lookupManifest(store, 'job', 1n);
    const again = await lookupManifest(store, 'job', 1n);
    expect(first.kind).toBe('committed');
    expect(again).toEqual(first);
    if (first.kind !== 'committed' || again.kind !== 'committed') return;
    expect(again.manifest).toBe(first.manifest);
    expect(Object.isFrozen(first.manifest) && Object.isFrozen(first.manifest.parts[0])).toBe(true);
    expect(() => { (first.manifest.parts as unknown as unknown[]).push(1); }).toThrow(TypeError);
    // One digit of the digest changed in place, same size, right after the reads: invalid, not the parse before.
    const file = path.join(epochDir(store, 'job', 1n), 'MANIFEST.json');
    const text = await readFile(file, 'utf8');
    const at = text.indexOf('"digest"') + '"digest": "'.length + 2;
    await writeFile(file, text.slice(0, at) + (text[at] === '0' ? '1' : '0') + text.slice(at + 1));
    const tampered = await lookupManifest(store, 'job', 1n);
    expect(tampered.kind).toBe('invalid');
    // Put back: committed again, parsed anew.
    await writeFile(file, text);
    const back = await lookupManifest(store, 'job', 1n);
    expect(back.kind).toBe('committed');
  });
});
