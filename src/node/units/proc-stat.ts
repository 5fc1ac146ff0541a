import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';

// What /proc says about a process: its scheduler state letter and its process
// group. The signal freezer uses it to prove that SIGSTOP really stopped every
// member of a unit's process group (the signal is asynchronous; kill()
// returning says nothing about when the target stops), and the tests use it
// to see that a frozen unit is really not running.

export interface ProcStat {
  pid: number;
  /** R running, S sleeping, D uninterruptible (also cgroup-v1 frozen), T stopped, t traced, Z zombie, X dead. */
  state: string;
  pgrp: number;
}

/**
 * Parses /proc/<pid>/stat (or /proc/<pid>/task/<tid>/stat). The command name
 * is in parentheses and may itself contain spaces and parentheses, so fields
 * are counted from the last ')'. Returns null when the process is gone.
 */
export async function readProcStat(pid: number, tid?: number): Promise<ProcStat | null> {
  const path = tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8'); // procfs: in memory, microseconds (see cgroup-dir.ts)
  } catch (err) {
    if (isGone(err)) return null;
    throw err;
  }
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const pgrp = Number(fields[2]);
  if (close < 0 || state === undefined || !Number.isInteger(pgrp)) {
    throw new Error(`unexpected format of ${path}: ${JSON.stringify(text.slice(0, 200))}`);
  }
  return { pid: tid ?? pid, state, pgrp };
}

/** The state letter of a process, or null when it is gone. */
export async function readProcState(pid: number): Promise<string | null> {
  return (await readProcStat(pid))?.state ?? null;
}

/** Zombies and dead tasks have exited; only their parent's wait() is missing. */
export function hasExited(state: string | null): boolean {
  return state === null || state === 'Z' || state === 'X';
}

/** The thread ids of a process (empty when it is gone). */
export async function listThreads(pid: number): Promise<number[]> {
  try {
    return (await readdir(`/proc/${pid}/task`)).map(Number).filter((n) => Number.isInteger(n));
  } catch (err) {
    if (isGone(err)) return [];
    throw err;
  }
}

/** Every pid on the machine (a snapshot: processes come and go meanwhile). */
export async function listPids(): Promise<number[]> {
  const names = await readdir('/proc');
  return names.filter((n) => /^\d+$/.test(n)).map(Number);
}

/** The pids whose process group is `pgid`: one scan of /proc. */
export async function listProcessGroup(pgid: number): Promise<number[]> {
  const stats = await Promise.all((await listPids()).map((pid) => readProcStat(pid).catch(() => null)));
  return stats.filter((s): s is ProcStat => s !== null && s.pgrp === pgid).map((s) => s.pid);
}

/** ENOENT, or ESRCH when a process vanished between readdir and read. */
export function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ESRCH';
}
