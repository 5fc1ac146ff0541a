// Test helpers for the store: temp store dirs that are removed afterwards, and
// page images whose bytes say which epoch, container and page wrote them, so a
// restore can be checked against a naive model (a Map of expected contents).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PAGE_BYTES, commitEpoch, writeNodePart, type EpochLayout, type EpochManifest, type PartPage } from '../../src/store/index.js';

/** A layout record for tests: one unit, no placement (a standalone agent's). */
export function testLayout(jobId: string): EpochLayout {
  return { spec: { jobId, units: [{ unitId: 'u1', command: '/bin/true', args: [], env: {} }], checkpointIntervalMs: 0, fullEvery: 0 }, placement: {}, partOwners: {} };
}

export async function makeStoreDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gridckpt-store-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Deterministic content of a page as written at `epoch`. */
export function pageBytes(epoch: bigint, container: string, page: number): Uint8Array {
  const out = new Uint8Array(PAGE_BYTES);
  const seed = `${epoch}/${container}/${page}/`;
  for (let i = 0; i < PAGE_BYTES; i++) out[i] = (seed.charCodeAt(i % seed.length) * 31 + i) & 0xff;
  return out;
}

export interface Staged { staging: Uint8Array; pages: PartPage[] }

/** A staging buffer holding `pages` (container, page) in the given order, content from pageBytes. */
export function stage(epoch: bigint, pages: Array<[string, number]>): Staged {
  const staging = new Uint8Array(pages.length * PAGE_BYTES);
  const entries: PartPage[] = pages.map(([container, page], i) => {
    staging.set(pageBytes(epoch, container, page), i * PAGE_BYTES);
    return { container, page, version: epoch * 100n + BigInt(page), stagingOffset: i * PAGE_BYTES };
  });
  return { staging, pages: entries };
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** Collects what loadEpoch delivers, failing on a page delivered twice. */
export function collector(): { sink: (c: string, p: number, d: Uint8Array) => void; pages: Map<string, Uint8Array> } {
  const pages = new Map<string, Uint8Array>();
  return {
    pages,
    sink: (container, page, data) => {
      const key = `${container}#${page}`;
      if (pages.has(key)) throw new Error(`${key} delivered twice`);
      pages.set(key, Uint8Array.from(data));
    },
  };
}

export const CONTAINERS = [
  { name: 'bank', pageCount: 8 },
  { name: 'log', pageCount: 4 },
];

/** Writes one part per node and commits the epoch (pages content from pageBytes). */
export async function writeEpoch(
  storeDir: string,
  jobId: string,
  epoch: bigint,
  parentEpoch: bigint | null,
  parts: Record<string, Array<[string, number]>>,
  containers = CONTAINERS,
): Promise<EpochManifest> {
  const infos = [];
  for (const [nodeId, pages] of Object.entries(parts)) {
    infos.push(await writeNodePart({ storeDir, jobId, epoch, nodeId, ...stage(epoch, pages) }));
  }
  return commitEpoch({
    storeDir, jobId, epoch, parentEpoch, full: parentEpoch === null, createdUnixMs: 1_700_000_000_000 + Number(epoch),
    containers, parts: infos, layout: testLayout(jobId),
  });
}

/** The naive model: replay each epoch's pages oldest first, keep containers E lists. */
export function expectedImage(
  epochs: Array<{ epoch: bigint; pages: Array<[string, number]> }>,
  containers = CONTAINERS,
): Map<string, Uint8Array> {
  const image = new Map<string, Uint8Array>();
  for (const { epoch, pages } of epochs) {
    for (const [c, p] of pages) image.set(`${c}#${p}`, pageBytes(epoch, c, p));
  }
  for (const key of [...image.keys()]) {
    const [c, p] = key.split('#');
    const meta = containers.find((m) => m.name === c);
    if (meta === undefined || Number(p) >= meta.pageCount) image.delete(key);
  }
  return image;
}

/** Containers of the crash-loop history: small ones plus 2 MiB so a kill often lands inside a data write. */
export const CRASH_CONTAINERS = [...CONTAINERS, { name: 'big', pageCount: 512 }];

/** Epoch e of the crash-loop history: full every 4th epoch, else incremental on e-1; two nodes. */
export function crashEpoch(epoch: bigint): { parent: bigint | null; parts: Record<string, Array<[string, number]>> } {
  const e = Number(epoch);
  const full = e % 4 === 1;
  const big = range(0, full ? 512 : 128).map((p) => ['big', (p + e * 37) % 512] as [string, number]);
  const unique = [...new Map(big.map(([c, p]) => [`${c}#${p}`, [c, p] as [string, number]])).values()];
  return {
    parent: full ? null : epoch - 1n,
    parts: {
      'node-a': full ? range(0, 8).map((p) => ['bank', p] as [string, number]) : [['bank', e % 8], ['bank', (e * 3 + 1) % 8]],
      'node-b': [['log', e % 4], ...unique],
    },
  };
}

/** The pages of the chain ending at `epoch` in the crash-loop history, oldest first. */
export function crashChain(epoch: bigint): Array<{ epoch: bigint; pages: Array<[string, number]> }> {
  const chain = [];
  for (let e: bigint | null = epoch; e !== null; e = crashEpoch(e).parent) {
    chain.unshift({ epoch: e, pages: Object.values(crashEpoch(e).parts).flat() });
  }
  return chain;
}
