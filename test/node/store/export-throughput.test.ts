// Export throughput, opt-in (GRIDCKPT_BENCH=1; GRIDCKPT_BENCH_MIB sets the size,
// default 1024): writeNodePart of N MiB of pages against a raw sequential
// write + fsync of the same bytes to the same directory. Target: raw time /
// export time >= 0.7. After one warm-up write, runs alternate and the median
// of each is compared, so a noisy neighbour hurts both sides alike.

import { open, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PAGE_BYTES, writeNodePart, type PartPage } from '../../../src/node/store/index.js';
import { makeStoreDir } from './helpers.js';

const enabled = process.env['GRIDCKPT_BENCH'] === '1';
const sizeMiB = Number(process.env['GRIDCKPT_BENCH_MIB'] ?? '1024');
const ROUNDS = 5;

async function rawWrite(file: string, data: Uint8Array): Promise<number> {
  const t0 = performance.now();
  const fh = await open(file, 'w');
  const chunk = 32 * 1024 * 1024;
  for (let at = 0; at < data.byteLength; at += chunk) await fh.write(data, at, Math.min(chunk, data.byteLength - at), at);
  await fh.sync();
  await fh.close();
  return performance.now() - t0;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe.skipIf(!enabled)('export throughput', () => {
  it(`writes ${sizeMiB} MiB of pages at >= 0.7 of a raw write + fsync`, async () => {
    const { dir, cleanup } = await makeStoreDir();
    try {
      const count = (sizeMiB * 1024 * 1024) / PAGE_BYTES;
      const staging = new Uint8Array(count * PAGE_BYTES);
      const words = new Uint32Array(staging.buffer);
      for (let i = 0; i < words.length; i += 7) words[i] = Math.imul(i, 2654435761); // not all zeros, cheap to make
      // As the agent stages them: container by container, pages ascending.
      const containers = ['heap', 'stack', 'bank'];
      const perContainer = Math.ceil(count / containers.length);
      const pages: PartPage[] = Array.from({ length: count }, (_, i) => ({
        container: containers[Math.floor(i / perContainer)]!, page: i % perContainer, version: BigInt(i), stagingOffset: i * PAGE_BYTES,
      }));
      const raw: number[] = [];
      const exported: number[] = [];
      const rawFile = path.join(dir, 'raw.bin');
      await rawWrite(rawFile, staging); // warm-up: the first write into fresh page cache is slow on VMs
      await rm(rawFile);
      for (let round = 0; round < ROUNDS; round++) {
        raw.push(await rawWrite(rawFile, staging));
        await rm(rawFile);
        const t0 = performance.now();
        await writeNodePart({ storeDir: dir, jobId: 'bench', epoch: BigInt(round + 1), nodeId: 'n', staging, pages });
        exported.push(performance.now() - t0);
        await rm(path.join(dir, 'bench'), { recursive: true });
      }
      const ratio = median(raw) / median(exported);
      const mibps = (ms: number): string => ((sizeMiB * 1000) / ms).toFixed(0);
      console.log(
        `export ${sizeMiB} MiB: raw ${raw.map((t) => t.toFixed(0)).join('/')} ms (median ${mibps(median(raw))} MiB/s), ` +
          `export ${exported.map((t) => t.toFixed(0)).join('/')} ms (median ${mibps(median(exported))} MiB/s), ratio ${ratio.toFixed(2)}`,
      );
      expect(ratio).toBeGreaterThanOrEqual(0.7);
    } finally {
      await cleanup();
    }
  }, 600_000);
});
