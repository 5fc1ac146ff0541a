// Atomic commit with a real kill -9 (ARCHITECTURE §3.3): a child process writes
// epochs through the store and dies by SIGKILL, at a named failpoint or at a
// random instant; the parent then checks that exactly the epochs whose manifest
// was renamed are committed, each restores exactly, leftovers are removed by
// removeIncomplete, and the next epoch can be committed.
// A process kill leaves the page cache intact, so this checks the ordering of
// the commit protocol, not fsync against power loss.
//
// The child runs plain JS: beforeAll transpiles the store's import closure
// (TypeScript's transpileModule, no type check — `tsc --noEmit` does that) into
// this test's own temp dir, so parallel runs never share build output and type
// errors elsewhere in the repo cannot break this test.

import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { epochChain, epochDir, listCommitted, loadEpoch, removeIncomplete, verifyEpoch } from '../../src/store/index.js';
import { CRASH_CONTAINERS, collector, crashChain, crashEpoch, expectedImage, makeStoreDir, writeEpoch } from './helpers.js';
import { expectSameImage } from './expect-image.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let work: string;
let childScript: string;

/** Transpiles `entry` and every relative import it reaches into `outDir`, keeping repo-relative paths. */
async function transpileClosure(entry: string, outDir: string): Promise<void> {
  const pending = [entry];
  const done = new Set<string>();
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (done.has(file)) continue;
    done.add(file);
    const source = await readFile(file, 'utf8');
    for (const m of source.matchAll(/from\s+'(\.{1,2}\/[^']+)\.js'/g)) pending.push(path.resolve(path.dirname(file), `${m[1]}.ts`));
    const out = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
    const target = path.join(outDir, path.relative(repo, file)).replace(/\.ts$/, '.js');
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, out.outputText);
  }
}

const CHILD = `
import { writeEpoch, crashEpoch, CRASH_CONTAINERS } from './build/test/store/helpers.js';
const [storeDir, mode, first] = process.argv.slice(2);
process.stdout.write('ready\\n');
if (mode === 'one') {
  const { parent, parts } = crashEpoch(BigInt(first));
  await writeEpoch(storeDir, 'job', BigInt(first), parent, parts, CRASH_CONTAINERS);
  process.stdout.write('committed ' + first + '\\n');
} else {
  for (let e = BigInt(first); ; e++) {
    const { parent, parts } = crashEpoch(e);
    await writeEpoch(storeDir, 'job', e, parent, parts, CRASH_CONTAINERS);
    process.stdout.write('committed ' + e + '\\n');
  }
}
`;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'gridckpt-store-crash-'));
  await symlink(path.join(repo, 'node_modules'), path.join(work, 'node_modules'), 'dir');
  await transpileClosure(path.join(repo, 'test/store/helpers.ts'), path.join(work, 'build'));
  childScript = path.join(work, 'child.mjs');
  await writeFile(childScript, CHILD);
});
afterAll(async () => rm(work, { recursive: true, force: true }));

let store: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir: store, cleanup } = await makeStoreDir()));
afterEach(async () => cleanup());

interface ChildRun { signal: NodeJS.Signals | null; code: number | null; committed: bigint[]; stderr: string }
interface KillPlan { afterLine: 'ready' | 'committed'; delayMs: number }

/** Runs the child; with a plan, SIGKILLs it (by its own pid) `delayMs` after it first prints `afterLine`. */
function runChild(args: string[], env: Record<string, string>, kill?: KillPlan): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [childScript, store, ...args], { cwd: work, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (kill !== undefined && timer === undefined && stdout.includes(kill.afterLine)) {
        timer = setTimeout(() => child.kill('SIGKILL'), kill.delayMs);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const committed = [...stdout.matchAll(/committed (\d+)/g)].map((m) => BigInt(m[1]!));
      resolve({ code, signal, committed, stderr });
    });
  });
}

async function expectRestores(epoch: bigint): Promise<void> {
  const got = collector();
  const result = await loadEpoch(store, 'job', epoch, got.sink);
  expectSameImage(got.pages, expectedImage(crashChain(epoch), CRASH_CONTAINERS), `restore of epoch ${epoch}`);
  expect(result.chain.map((m) => m.epoch)).toEqual(crashChain(epoch).map((e) => e.epoch).reverse());
}

describe('kill -9 at a failpoint while writing epoch 2', () => {
  const points: Array<[string, string[]]> = [
    ['store.after-part-data', ['node-a.pages']],
    ['store.after-part', ['node-a.pages', 'node-a.table']],
    ['store.before-manifest', ['node-a.pages', 'node-a.table', 'node-b.pages', 'node-b.table']],
    ['store.before-manifest-rename', ['MANIFEST.json.tmp', 'node-a.pages', 'node-a.table', 'node-b.pages', 'node-b.table']],
  ];
  for (const [point, leftovers] of points) {
    it(`${point}: epoch 1 stays the only committed epoch and restores; the leftover is removed; epoch 2 can then be committed`, async () => {
      const first = await runChild(['one', '1'], {});
      expect(first, first.stderr).toMatchObject({ code: 0, committed: [1n] });

      const crashed = await runChild(['one', '2'], { GRIDCKPT_FAILPOINTS: `${point}=kill` });
      expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
      expect(crashed.committed).toEqual([]);
      expect((await readdir(epochDir(store, 'job', 2n))).sort()).toEqual(leftovers);

      expect((await listCommitted(store, 'job')).map((m) => m.epoch)).toEqual([1n]);
      await expect(epochChain(store, 'job', 2n)).rejects.toMatchObject({ kind: 'not-found' });
      await expectRestores(1n);
      expect(await removeIncomplete(store, 'job')).toEqual([2n]);
      await expect(readdir(epochDir(store, 'job', 2n))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await removeIncomplete(store, 'job')).toEqual([]);

      const { parent, parts } = crashEpoch(2n);
      await writeEpoch(store, 'job', 2n, parent, parts, CRASH_CONTAINERS);
      expect((await listCommitted(store, 'job')).map((m) => m.epoch)).toEqual([1n, 2n]);
      await expectRestores(2n);
    });
  }

  it('an error (not a kill) at a failpoint leaves the same state', async () => {
    await runChild(['one', '1'], {});
    const failed = await runChild(['one', '2'], { GRIDCKPT_FAILPOINTS: 'store.before-manifest-rename=error' });
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/failpoint store\.before-manifest-rename fired/);
    expect((await listCommitted(store, 'job')).map((m) => m.epoch)).toEqual([1n]);
    expect(await removeIncomplete(store, 'job')).toEqual([2n]);
  });
});

describe('kill -9 at a random instant', () => {
  it('always leaves epochs 1..k committed and restorable, k the last epoch reported or the one after', async () => {
    // Kill points spread over start-up, part writes and commits: half the rounds
    // count from start-up, half from the first commit (so every run makes
    // progress even on a loaded machine). Timing is the OS's: each round says what it hit.
    const plans: KillPlan[] = [0, 5, 15, 30, 60, 100, 150, 220].flatMap((delayMs) => [
      { afterLine: 'ready' as const, delayMs },
      { afterLine: 'committed' as const, delayMs },
    ]);
    let next = 1n;
    const hits: string[] = [];
    for (const plan of plans) {
      const run = await runChild(['loop', String(next)], {}, plan);
      expect(run.signal, run.stderr).toBe('SIGKILL');
      const reported = run.committed.length > 0 ? run.committed[run.committed.length - 1]! : next - 1n;
      const committed = (await listCommitted(store, 'job')).map((m) => m.epoch);
      const k = committed.length === 0 ? 0n : committed[committed.length - 1]!;
      expect(committed).toEqual(Array.from({ length: Number(k) }, (_, i) => BigInt(i + 1)));
      expect(k === reported || k === reported + 1n, `committed up to ${k}, child reported ${reported}`).toBe(true);
      const removed = await removeIncomplete(store, 'job');
      expect(removed.every((e) => e > k)).toBe(true);
      hits.push(`${plan.afterLine}+${plan.delayMs}ms: committed ${k}, removed [${removed.join(',')}]`);
      if (k > 0n) {
        await expectRestores(k);
        expect((await verifyEpoch(store, 'job', k)).errors).toEqual([]);
      }
      next = k + 1n;
    }
    expect(next).toBeGreaterThan(BigInt(plans.length / 2));
    console.log(`random kills: ${hits.join('; ')}`);
  });
});
