import { closeSync, constants, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { access, mkdir, rmdir, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { SpawnPlan } from './freezer.js';
import type { TimePorts } from '../../runtime/runtime.js';
import { pollUntil } from './poll-until.js';
import { hasExited, readProcState } from './proc-stat.js';

// What the two cgroup freezers share: the directory layout
// <root>/gridckpt/<scope>/<group>, the exec wrapper that enters the group
// before the unit's own code runs, reading and killing a group's tasks, and
// deleting a group tree. Only how to freeze, thaw and kill differs, and that
// stays in freezer-cgroup-v1.ts and freezer-cgroup-v2.ts.
//
// Control files are read and written with synchronous calls (so is /proc,
// proc-stat.ts): cgroupfs lives in memory and each call returns in
// microseconds (a v1 freezer.state write too, given the keeper of
// freezer-cgroup-v1.ts), where an async call costs three thread-pool round
// trips and their promises. A freeze and thaw make about ten such calls per
// unit; with 64 agents in one process an empty round spent ~40 ms of the
// event loop on them (measured: 190 -> 110 ms a round). The async functions
// stay async, and the polls still yield between looks (poll-until.ts).

export const CGROUP_V1_MAGIC = 0x27e0eb;
export const CGROUP_V2_MAGIC = 0x63677270;

/** How long remove() and cleanupScope() wait for a killed group to empty. */
export const REMOVE_TIMEOUT_MS = 5_000;

export function scopeDirOf(root: string, scope: string): string {
  return join(root, 'gridckpt', scope);
}

/** Group names are validated upstream; a bad one here would be a bug that escapes the scope. */
export function groupDirOf(scopeDir: string, group: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(group) || group.includes('..')) {
    throw new Error(`invariant broken: bad cgroup group name ${JSON.stringify(group)}`);
  }
  return join(scopeDir, group);
}

/**
 * Checks that `root` is a cgroup mount of the expected version and that this
 * process can create groups there with a writable `controlFile`; returns
 * the scope directory (created). Throws an Error saying why not. The
 * filesystem type is checked first so that a wrong root never gets
 * directories created in an ordinary filesystem.
 */
export async function prepareScope(root: string, scope: string, magic: number, controlFile: string): Promise<string> {
  const version = magic === CGROUP_V1_MAGIC ? 'v1' : 'v2';
  let type: number;
  try {
    type = (await statfs(root)).type;
  } catch (err) {
    throw new Error(cgroupGone(err) ? `${root} does not exist` : `cannot stat ${root}: ${(err as Error).message}`);
  }
  if (type !== magic) {
    throw new Error(`${root} is not a cgroup ${version} mount (filesystem type 0x${type.toString(16)})`);
  }
  const dir = scopeDirOf(root, scope);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new Error(`cannot create ${dir}: ${(err as Error).message}`);
  }
  try {
    await access(join(dir, controlFile), constants.W_OK);
  } catch (err) {
    await rmdir(dir).catch(() => undefined);
    await rmdir(dirname(dir)).catch(() => undefined); // only if no other scope lives there
    throw new Error(`${dir} has no writable ${controlFile} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return dir;
}

/**
 * The group is gone: ENOENT, or ENODEV when it was deleted while we had one
 * of its files open (a removal racing with a read or write).
 */
export function cgroupGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENODEV';
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The shell writes its own pid into the group and then execs the unit, so
 * the unit's pid is the shell's and it is inside the group before its first
 * instruction. A command that is not found fails the exec: exit code 127.
 */
export function cgroupSpawnPlan(groupDir: string, command: string, args: string[]): SpawnPlan {
  const procs = shellQuote(join(groupDir, 'cgroup.procs'));
  return { command: '/bin/sh', args: ['-c', `echo $$ > ${procs} && exec "$0" "$@"`, command, ...args] };
}

/** The pids in a group (processes, not threads); empty when the group is gone. */
export async function readPids(groupDir: string): Promise<number[]> {
  try {
    const text = readFileSync(join(groupDir, 'cgroup.procs'), 'utf8');
    return text.split('\n').filter((l) => l !== '').map(Number);
  } catch (err) {
    if (cgroupGone(err)) return [];
    throw err;
  }
}

export function killPids(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
}

/**
 * Writes a control file; false when the group (or, on an older kernel, the
 * file) is gone. Opened write-only without O_CREAT: kernfs refuses a read
 * open of write-only files such as cgroup.kill.
 */
export async function writeControl(groupDir: string, file: string, value: string): Promise<boolean> {
  try {
    const fd = openSync(join(groupDir, file), constants.O_WRONLY);
    try {
      writeSync(fd, value);
    } finally {
      closeSync(fd);
    }
    return true;
  } catch (err) {
    if (cgroupGone(err)) return false;
    throw err;
  }
}

/** Reads a control file, trimmed; null when the group is gone. */
export async function readControl(groupDir: string, file: string): Promise<string | null> {
  try {
    return readFileSync(join(groupDir, file), 'utf8').trim();
  } catch (err) {
    if (cgroupGone(err)) return null;
    throw err;
  }
}

/**
 * Whether `pid` is in the group or in a child group the unit made inside it.
 * Zombies are not listed: a unit that has exited is not in its group.
 */
export async function groupTreeHasPid(groupDir: string, pid: number): Promise<boolean> {
  if ((await readPids(groupDir)).includes(pid)) return true;
  for (const child of await listChildGroups(groupDir)) {
    if (await groupTreeHasPid(join(groupDir, child), pid)) return true;
  }
  return false;
}

/**
 * Waits, after the freeze was requested, until the unit is really frozen;
 * returns null then, or why not (the caller thaws). Each poll reads only
 * the group's state until it says frozen; then three more looks:
 *
 * - Membership. An empty group freezes at once, so the state alone does not
 *   prove the unit stopped. Right after spawn the unit may not be in the
 *   group yet (its /bin/sh wrapper has not run `echo $$ > cgroup.procs`);
 *   it is frozen as it joins, so we keep polling.
 * - The state again, read after membership, so a frozen state covers the
 *   unit even if it joined meanwhile.
 * - Whether the unit is dying: a main thread that is a zombie is still
 *   listed in cgroup.procs while its other threads exit, and freezing
 *   something that is dying proves nothing.
 */
export async function awaitGroupFrozen<S>(
  time: TimePorts,
  dir: string,
  pid: number,
  timeoutMs: number,
  readState: () => Promise<S | null>,
  isFrozen: (state: S) => boolean,
): Promise<string | null> {
  let state: S | null = null;
  let member = false;
  let exited = false;
  const settled = await pollUntil(time, async () => {
    state = await readState();
    if (state === null || !isFrozen(state)) return state === null;
    member = await groupTreeHasPid(dir, pid);
    state = await readState();
    exited = hasExited(await readProcState(pid));
    return state === null || exited || (member && isFrozen(state));
  }, timeoutMs);
  const last = state as S | null;
  if (settled && last !== null && !exited && member && isFrozen(last)) return null;
  if (last === null) return `cgroup ${dir} is gone`;
  if (exited) return `unit process ${pid} has exited`;
  if (isFrozen(last) && !member) return `unit process ${pid} did not show up in cgroup ${dir} within ${timeoutMs} ms: it has moved out`;
  return `cgroup ${dir} did not freeze within ${timeoutMs} ms (state ${String(last)})`;
}

/** The names of the child groups of a cgroup directory; empty when it is gone. */
export async function listChildGroups(dir: string): Promise<string[]> {
  try {
    const entries = readdirSync(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if (cgroupGone(err)) return [];
    throw err;
  }
}

/** What differs between the versions when a group must die: see removeGroupTree. */
export type ReleaseGroup = (dir: string) => Promise<void>;

/**
 * Deletes a group and any child groups a unit made inside it. Every task in
 * the tree gets SIGKILL first, while still frozen, so none runs user code
 * again; then `release` is called on each group top-down (v1 must thaw, or
 * the pending SIGKILL never lands; v2 can use cgroup.kill); then we wait
 * until the tree is empty, SIGKILLing anything that moved in meanwhile, and
 * rmdir it deepest first. Returns false when the group did not exist.
 */
export async function removeGroupTree(
  time: TimePorts,
  groupDir: string,
  release: ReleaseGroup,
  timeoutMs = REMOVE_TIMEOUT_MS,
): Promise<boolean> {
  const deadline = time.clock.nowMs() + timeoutMs;
  const dirs = await listTree(groupDir);
  if (dirs.length === 0) return false;
  for (const dir of dirs) killPids(await readPids(dir), 'SIGKILL');
  for (const dir of dirs) await release(dir);
  let left: number[] = [];
  const emptied = await pollUntil(time, async () => {
    left = (await Promise.all(dirs.map(readPids))).flat();
    killPids(left, 'SIGKILL');
    return left.length === 0;
  }, deadline - time.clock.nowMs());
  if (!emptied) throw new Error(`cgroup ${groupDir} still holds pids ${left.join(', ')} after SIGKILL`);
  for (const dir of dirs.reverse()) await rmdirGroup(time, dir, deadline);
  return true;
}

/** The group and its descendants, parents before children; empty when it is gone. */
async function listTree(dir: string): Promise<string[]> {
  try {
    await access(dir);
  } catch (err) {
    if (cgroupGone(err)) return [];
    throw err;
  }
  const tree = [dir];
  for (const child of await listChildGroups(dir)) tree.push(...(await listTree(join(dir, child))));
  return tree;
}

/** An emptied group can refuse rmdir for a moment (EBUSY) while the kernel tears the last task down. */
export async function rmdirGroup(time: TimePorts, dir: string, deadline: number): Promise<void> {
  let lastError: unknown = null;
  const removed = await pollUntil(time, async () => {
    try {
      await rmdir(dir);
      return true;
    } catch (err) {
      if (cgroupGone(err)) return true;
      if ((err as NodeJS.ErrnoException).code !== 'EBUSY') throw err;
      lastError = err;
      return false;
    }
  }, deadline - time.clock.nowMs());
  if (!removed) throw new Error(`cannot rmdir cgroup ${dir}: ${String(lastError)}`);
}

/**
 * Startup cleanup shared by both versions: removes every group under the
 * scope directory, then the scope directory itself (plan() recreates it).
 * Not to be run while this scope starts units: a group planned meanwhile
 * could be deleted under the unit.
 */
export async function removeScopeGroups(time: TimePorts, scopeDir: string, release: ReleaseGroup): Promise<number> {
  let count = 0;
  for (const group of await listChildGroups(scopeDir)) {
    if (await removeGroupTree(time, join(scopeDir, group), release)) count++;
  }
  // The kernel may refuse for a moment (EBUSY) while the groups just removed are torn down.
  await rmdirGroup(time, scopeDir, time.clock.nowMs() + REMOVE_TIMEOUT_MS);
  return count;
}
