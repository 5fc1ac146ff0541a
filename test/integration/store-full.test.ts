// A full store (docs/store-lifecycle.md, "A full store"; ARCHITECTURE §3.3,
// §3.4): a cluster whose store is a size-limited tmpfs this test mounts. Once
// a filler file takes the last byte, rounds abort with the store's ENOSPC
// named in the job's last error and counted by gridckpt_cluster_store_full_total;
// no unit is left frozen; the last committed epoch still restores; and once
// the filler is gone the periodic rounds commit again by themselves.

import { execFileSync } from 'node:child_process';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clusterBankSpec } from '../../src/cli/cluster-cmd.js';
import { isErrno } from '../../src/runtime/durable-fs.js';
import { epochChain, loadEpoch, verifyEpoch } from '../../src/store/index.js';
import { untilStatus } from '../../src/wire/watch-until.js';
import { realRuntime } from '../../src/wire/real-clients.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { procState, untilAgent } from '../helpers/agent.js';
import { untilCluster } from '../helpers/cluster.js';
import { withProcs } from '../helpers/procs.js';
import { withTmp } from '../helpers/tmp.js';

const params = { accounts: 4_096, units: 2, opsPerUnit: 50_000_000, seed: 5 };
const root = process.getuid?.() === 0;

/** Writes zeros into `file` until the file system says ENOSPC. */
async function fill(file: string): Promise<number> {
  const fh = await open(file, 'w');
  const chunk = Buffer.alloc(256 * 1024);
  let bytes = 0;
  try {
    for (;;) {
      try {
        const { bytesWritten } = await fh.write(chunk, 0, chunk.byteLength);
        bytes += bytesWritten;
        if (bytesWritten < chunk.byteLength) break;
      } catch (err) {
        if (isErrno(err, 'ENOSPC')) break;
        throw err;
      }
    }
  } finally {
    await fh.close();
  }
  return bytes;
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

describe.skipIf(!root)('cluster: a full store', () => {
  it('aborts rounds cleanly, thaws the units, keeps the last epoch, and resumes once space is back', async () => {
    await withTmp('store-full', async (dir) => {
      const store = join(dir, 'c1-store');
      await mkdir(store);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', store]);
      try {
        await withProcs(dir, async (p) => {
          const c = await p.cluster('c1', ['--checkpoint-interval-ms', '200', '--metrics-listen', '127.0.0.1:0']);
          const agent = await c.addAgent(4);
          const metrics = c.proc.ready.metrics!;
          await c.client.submitJob({ job: clusterBankSpec('bank', params, 200) });
          // An epoch that holds the units' pages (the first rounds may come before they opened their containers).
          const first = await untilStatus(realRuntime(), c.client, async (s) => {
            const e = s.jobs[0]?.lastEpoch ?? 0n;
            return e > 0n && (await epochChain(store, 'bank', e))[0]!.parts.some((x) => x.pageCount > 0);
          }, 'an epoch with the units\' pages', 60_000);
          expect(first.jobs[0]!.roundsAborted).toBe(0n);

          const filler = join(store, 'filler');
          await fill(filler);
          const df = execFileSync('df', ['-B1', '--output=avail', store]).toString();
          expect(Number(df.trim().split('\n').at(-1)), df).toBeLessThan(64 * 1024);
          const full = await untilCluster(c.client, (s) => /no space left on device|ENOSPC/i.test(s.jobs[0]!.lastError) && s.jobs[0]!.roundsAborted >= 2n, 'rounds aborted for a full store');
          const lastGood = full.jobs[0]!.lastEpoch;
          expect(full.jobs[0]!.state).toBe('running');
          expect(await metric(metrics, 'gridckpt_cluster_store_full_total')).toBeGreaterThanOrEqual(2);

          // The units run: none stays frozen (a round may be in its freeze window: it must come out of it).
          const a = new AgentClient(agent.ready.grpc);
          try {
            let states: (string | null)[] = [];
            await untilAgent(a, async (st) => {
              const units = st.jobs.flatMap((j) => j.units).filter((u) => u.state !== 'exited');
              states = await Promise.all(units.map(async (u) => (u.state === 'running' ? await procState(u.pid) : 'frozen')));
              return units.length === params.units && states.every((x) => x !== 'frozen' && x !== 'T');
            }, 'the units out of any freeze', 10_000).catch((err: unknown) => {
              throw new Error(`units stay frozen: ${states.join(',')} (${String(err)})`);
            });
          } finally {
            a.close();
          }
          // The last committed epoch restores, every page verified.
          expect((await verifyEpoch(store, 'bank', lastGood)).errors).toEqual([]);
          expect((await loadEpoch(store, 'bank', lastGood, () => undefined)).pagesLoaded).toBeGreaterThan(0);

          // Space back: the periodic rounds commit again by themselves.
          await rm(filler);
          const resumed = await untilCluster(c.client, (s) => s.jobs[0]!.lastEpoch > lastGood, 'a round committed after the space came back');
          expect(resumed.jobs[0]!.state).toBe('running');
          expect((await verifyEpoch(store, 'bank', resumed.jobs[0]!.lastEpoch)).ok).toBe(true);
        });
      } finally {
        execFileSync('umount', ['-l', store]);
      }
    });
  }, 180_000);
});
