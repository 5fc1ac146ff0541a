// Shared pieces of the unit and freezer tests: unique scopes (so parallel
// test files and repeated runs never share a cgroup or a tag), a busy child
// that prints a counter every millisecond (so a test can see that a frozen
// process really makes no progress), and short polls with deadlines for the
// conditions the kernel gives no event for.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { readFile, statfs } from 'node:fs/promises';
import type { Freezer, FreezerKind } from '../../../src/node/units/freezer.js';
import { detectFreezer } from '../../../src/node/units/freezer.js';
import { CGROUP_V1_MAGIC, CGROUP_V2_MAGIC } from '../../../src/node/units/cgroup-dir.js';
import { pollUntil } from '../../../src/node/units/poll-until.js';
import { realRuntime } from '../../../src/wire/real-clients.js';

export const V1_ROOT = '/sys/fs/cgroup/freezer';
/** On this hybrid machine cgroup v2 is mounted here, not at /sys/fs/cgroup. */
export const V2_ROOT = '/sys/fs/cgroup/unified';

export function uniqueScope(label: string): string {
  return `t${process.pid}-${label}-${randomBytes(4).toString('hex')}`;
}

async function isMount(root: string, magic: number): Promise<boolean> {
  try {
    return (await statfs(root)).type === magic;
  } catch {
    return false;
  }
}

export const HAVE_V1 = await isMount(V1_ROOT, CGROUP_V1_MAGIC);
export const HAVE_V2 = await isMount(V2_ROOT, CGROUP_V2_MAGIC);

/** The freezer kinds this machine can test, with the roots to pass. */
export const AVAILABLE_KINDS: FreezerKind[] = [
  ...(HAVE_V1 ? (['cgroup-v1'] as const) : []),
  ...(HAVE_V2 ? (['cgroup-v2'] as const) : []),
  'signal',
];

export function openFreezer(kind: FreezerKind, scope: string): Promise<Freezer> {
  return detectFreezer(kind, { scope, cgroupV1Root: V1_ROOT, cgroupV2Root: V2_ROOT, time: realRuntime() });
}

/** Prints its cgroup membership, then a counter line every millisecond, forever, on the CPU. */
export const COUNTER_SCRIPT = `
process.stdout.write('cgroup ' + require('fs').readFileSync('/proc/self/cgroup', 'utf8').split('\\n').join(' | ') + '\\n');
if (process.env.IGNORE_SIGTERM) process.on('SIGTERM', () => {});
let n = 0, last = 0;
for (;;) { n++; const t = Date.now(); if (t !== last) { last = t; process.stdout.write(n + '\\n'); } }
`;

export interface Spawned {
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns the counter through the freezer's plan, detached like the supervisor does, stdout to `outFile`. */
export async function spawnCounter(freezer: Freezer, group: string, outFile: string): Promise<Spawned> {
  const plan = await freezer.plan(group, process.execPath, ['-e', COUNTER_SCRIPT]);
  const fd = openSync(outFile, 'a');
  try {
    const child = spawn(plan.command, plan.args, { detached: true, stdio: ['ignore', fd, fd] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    return { child, pid: child.pid!, exited };
  } finally {
    closeSync(fd);
  }
}

/** The last complete counter line of a file (-1 before the first one). */
export async function lastCount(file: string): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return -1;
  }
  const lines = text.split('\n');
  lines.pop(); // the part after the last newline may be half written
  for (let i = lines.length - 1; i >= 0; i--) {
    const n = Number(lines[i]);
    if (lines[i] !== '' && Number.isInteger(n)) return n;
  }
  return -1;
}

export async function readText(file: string): Promise<string> {
  return readFile(file, 'utf8').catch(() => '');
}

/** Polls with a deadline; fails the test with `what` if the condition never holds. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  if (!(await pollUntil(realRuntime(), check, timeoutMs))) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Waits until the child's counter passes `above`: it is running. */
export async function waitCounting(file: string, above = 0, timeoutMs = 10_000): Promise<number> {
  let n = -1;
  await waitFor(`counter in ${file} to pass ${above}`, async () => (n = await lastCount(file)) > above, timeoutMs);
  return n;
}

/**
 * Absence of progress has no event: the only way to show a frozen process
 * does not count is to watch it for a while. 150 ms is 150 counter lines
 * for a running child.
 */
export const STILL_MS = 150;
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Spins, without yielding to the event loop, until `pid` is a zombie. Node
 * reaps children from the event loop, so for as long as this spins the
 * process has exited but its parent has not been told: the window in which
 * a supervisor still believes a dead unit is running.
 */
export function spinUntilZombie(pid: number, timeoutMs = 5_000): void {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      throw new Error(`pid ${pid} was reaped before it was seen as a zombie`);
    }
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return;
  }
  throw new Error(`pid ${pid} did not become a zombie within ${timeoutMs} ms`);
}

/** Test cleanup: SIGKILL a process group, ignoring one that is gone. */
export function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}
