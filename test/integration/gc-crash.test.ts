// Garbage collection under kill -9 (ARCHITECTURE §3.3, docs/store-lifecycle.md):
// the real collector (`gridckpt gc`'s light entry, the coordinator's
// EpochCollector and the store's retireEpoch) killed at GRIDCKPT_GC_KILLS
// points (default 200): half at a failpoint inside a retirement (before or
// after the demotion, after the tombstone claim, the move to trash, the
// removal — at its 1st to 3rd retirement), half at a random instant. After
// each kill every epoch that was retained (the newest K and their chains)
// still verifies page by page, and every epoch a reader lists as committed
// verifies too (none half deleted). At the end one uninterrupted collection
// leaves exactly the retained epochs: nothing a later collection cannot clean.

import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { scriptPath } from '../../src/common/script-path.js';
import { SeededRng } from '../../src/runtime/rng.js';
import { listCommitted, verifyEpoch, type EpochManifest } from '../../src/store/index.js';
import { epochDirName } from '../../src/store/layout.js';
import { writeEpoch } from '../store/helpers.js';

const KILLS = Number(process.env['GRIDCKPT_GC_KILLS'] ?? 200);
const KEEP = 3;
const POINTS = ['gc.before-demote', 'gc.after-demote', 'gc.after-claim', 'gc.after-move', 'gc.after-remove'];
const GC_MAIN = scriptPath(import.meta.url, '../../src/cli/gc-main.js');
const JOBS = [{ jobId: 'a', fullEvery: 4 }, { jobId: 'b', fullEvery: 3 }];

/** The newest KEEP committed epochs and every epoch their chains need (a naive model of retention). */
function mustKeep(committed: EpochManifest[]): bigint[] {
  const byEpoch = new Map(committed.map((m) => [m.epoch, m]));
  const keep = new Set<bigint>();
  for (const m of committed.slice(-KEEP)) {
    for (let at: EpochManifest | undefined = m; at !== undefined; at = at.parentEpoch === null ? undefined : byEpoch.get(at.parentEpoch)) keep.add(at.epoch);
  }
  return [...keep].sort((x, y) => (x < y ? -1 : 1));
}

/** Runs one collection; kills it at a random instant after it started when killAfterMs is set. */
function runGc(store: string, env: NodeJS.ProcessEnv, killAfterMs: number | null): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const child = spawn(process.execPath, [GC_MAIN, store, String(KEEP)], { env, stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  if (killAfterMs !== null) {
    createInterface({ input: child.stdout }).once('line', () => {
      setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    });
  } else {
    child.stdout.resume();
  }
  return exited;
}

describe('garbage collection under kill -9', () => {
  it(`loses no retained epoch at ${KILLS} kill points, and a later collection cleans up`, async () => {
    const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
    const store = await mkdtemp(join(base, 'gridckpt-gc-crash-'));
    const rng = new SeededRng(Number(process.env['GRIDCKPT_GC_SEED'] ?? 8));
    const next = new Map(JOBS.map((j) => [j.jobId, 1]));
    let kills = 0;
    const byPoint = new Map<string, number>();
    try {
      for (let attempt = 0; kills < KILLS; attempt++) {
        expect(attempt, 'too many collections finished before their kill').toBeLessThan(KILLS * 5);
        // One or two new epochs per job: there is always something to retire.
        for (const j of JOBS) {
          for (let k = 0; k < 1 + rng.int(2); k++) {
            const e = next.get(j.jobId)!;
            const full = (e - 1) % j.fullEvery === 0;
            await writeEpoch(store, j.jobId, BigInt(e), full ? null : BigInt(e - 1), full
              ? { 'node-a': [['bank', 0], ['bank', 1], ['log', 0]], 'node-b': [['bank', 2], ['log', 1]] }
              : { 'node-a': [['bank', e % 8]] });
            next.set(j.jobId, e + 1);
          }
        }
        const keep = new Map<string, bigint[]>();
        for (const j of JOBS) keep.set(j.jobId, mustKeep(await listCommitted(store, j.jobId)));

        // Every tenth collection runs to its end (it also cleans up after the killed ones: the store stays small).
        const whole = attempt % 10 === 9;
        const atPoint = attempt % 2 === 0;
        const point = POINTS[Math.floor(attempt / 2) % POINTS.length]!;
        const env = atPoint && !whole ? { ...process.env, GRIDCKPT_FAILPOINTS: `${point}=kill@${1 + rng.int(3)}` } : { ...process.env };
        const r = await runGc(store, env, atPoint || whole ? null : rng.int(30));
        if (r.signal === 'SIGKILL') {
          kills += 1;
          const label = atPoint ? point : 'random';
          byPoint.set(label, (byPoint.get(label) ?? 0) + 1);
        } else {
          expect(r.code, `collection ${attempt} ended with ${r.code}/${r.signal}`).toBe(0);
        }

        for (const j of JOBS) {
          const committed = await listCommitted(store, j.jobId);
          const listed = committed.map((m) => m.epoch);
          for (const e of keep.get(j.jobId)!) expect(listed, `job ${j.jobId}: retained epoch ${e} after kill ${kills}`).toContain(e);
          // Every epoch a reader takes for committed restores: its whole chain verifies page by page
          // (retirements go newest first, so no listed epoch ever lacks a parent).
          for (const e of listed) expect((await verifyEpoch(store, j.jobId, e)).errors, `job ${j.jobId} epoch ${e} after kill ${kills}`).toEqual([]);
        }
      }
      // Kills landed at every failpoint and at random instants.
      for (const p of [...POINTS, 'random']) expect(byPoint.get(p) ?? 0, `kills at ${p}`).toBeGreaterThan(0);

      // One collection to the end: exactly the retained epochs stay, no leftovers of the killed ones.
      expect(await runGc(store, { ...process.env }, null)).toEqual({ code: 0, signal: null });
      for (const j of JOBS) {
        const committed = await listCommitted(store, j.jobId);
        const keep = mustKeep(committed);
        expect(committed.map((m) => m.epoch)).toEqual(keep);
        expect((await readdir(join(store, j.jobId))).sort()).toEqual(keep.map((e) => epochDirName(e)));
        for (const e of keep) expect((await verifyEpoch(store, j.jobId, e)).ok).toBe(true);
      }
    } finally {
      await rm(store, { recursive: true, force: true });
    }
  }, 900_000);
});
