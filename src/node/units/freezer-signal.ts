import { readFile } from 'node:fs/promises';
import type { Freezer, SpawnPlan } from './freezer.js';
import { hasExited, isGone, listPids, listProcessGroup, listThreads, readProcStat, readProcState } from './proc-stat.js';
import { pollUntil } from './poll-until.js';
import type { TimePorts } from '../../runtime/runtime.js';
import { REMOVE_TIMEOUT_MS } from './cgroup-dir.js';

// The freezer of last resort: SIGSTOP to the unit's process group (the
// supervisor spawns each unit detached, so its pid is its pgid), and SIGCONT
// to let it go. kill() returns before the targets stop, so freeze() watches
// /proc until every thread of every member of the group is in state T.
// Weaknesses, compared with a cgroup: a unit that moves a child into another
// process group takes it out of reach, and the unit's parent can see the
// stop. It needs nothing but signals and /proc.
//
// A unit left SIGSTOPped by an agent that died stays stopped for good (the
// kernel's orphaned-process-group SIGCONT does not apply: units run in their
// own session). So plan() tags each unit with GRIDCKPT_FREEZER_TAG=<scope>/<group>
// in its environment, which its descendants inherit, and cleanupScope()
// finds and kills the tagged processes of an earlier incarnation through
// /proc/<pid>/environ (best effort: a unit that execs with a cleared
// environment drops the tag).

export const TAG_VARIABLE = 'GRIDCKPT_FREEZER_TAG';

export async function openSignalFreezer(scope: string, note: string, time: TimePorts): Promise<Freezer> {
  try {
    await readFile('/proc/self/stat');
  } catch (err) {
    throw new Error(`cannot read /proc/self/stat (${(err as Error).message}): cannot tell when a unit has stopped`);
  }
  return new SignalFreezer(scope, note, time);
}

class SignalFreezer implements Freezer {
  readonly kind = 'signal' as const;
  readonly detail: string;

  constructor(
    private readonly scope: string,
    note: string,
    private readonly time: TimePorts,
  ) {
    this.detail = `SIGSTOP/SIGCONT to the unit's process group${note ? ` (${note})` : ''}`;
  }

  plan(group: string, command: string, args: string[]): Promise<SpawnPlan> {
    const tag = `${this.scope}/${group}`;
    if (!/^[A-Za-z0-9._+/-]+$/.test(tag)) throw new Error(`invariant broken: bad freezer tag ${JSON.stringify(tag)}`);
    return Promise.resolve({
      command: '/bin/sh',
      args: ['-c', `${TAG_VARIABLE}=${tag}; export ${TAG_VARIABLE}; exec "$0" "$@"`, command, ...args],
    });
  }

  async freeze(group: string, pid: number, timeoutMs: number): Promise<void> {
    if (hasExited(await readProcState(pid))) throw new Error(`cannot freeze ${group}: unit process ${pid} has exited`);
    if (!signalGroup(pid, 'SIGSTOP')) throw new Error(`cannot freeze ${group}: process group ${pid} is gone`);
    // One scan of /proc, after the signal: a process forked while the
    // signal was on its way gets it too (Linux >= 5.0 hands group-wide
    // signals to children of a fork in progress) and a stopped process
    // cannot fork or join the group, so no member can appear later.
    const members = await listProcessGroup(pid);
    let waiting: number[] = [];
    const stopped = await pollUntil(this.time, async () => {
      waiting = await notStopped(waiting.length > 0 ? waiting : members);
      return waiting.length === 0;
    }, timeoutMs);
    const mainState = await readProcState(pid);
    if (stopped && !hasExited(mainState)) return;
    signalGroup(pid, 'SIGCONT');
    throw new Error(
      hasExited(mainState)
        ? `cannot freeze ${group}: unit process ${pid} exited while stopping`
        : `process group ${pid} of ${group} did not stop within ${timeoutMs} ms (still running: ${waiting.join(', ')})`,
    );
  }

  async thaw(group: string, pid: number, timeoutMs: number): Promise<void> {
    if (!signalGroup(pid, 'SIGCONT')) return; // the group is gone: nothing is stopped
    // The kernel wakes every stopped thread of every member while it
    // delivers SIGCONT, before kill() returns; looking at the leader is a
    // cheap check of that, where a scan of /proc would cost the freeze window.
    const running = await pollUntil(this.time, async () => (await readProcState(pid)) !== 'T', timeoutMs);
    if (!running) throw new Error(`unit process ${pid} of ${group} is still stopped ${timeoutMs} ms after SIGCONT`);
  }

  async isFrozen(_group: string, pid: number): Promise<boolean> {
    return (await readProcState(pid)) === 'T';
  }

  /** Signals leave nothing to delete. */
  async remove(_group: string): Promise<void> {}

  async cleanupScope(): Promise<number> {
    const prefix = `${TAG_VARIABLE}=${this.scope}/`;
    const tagged = await findTagged(prefix);
    const groups = new Set(tagged.map((t) => t.tag));
    for (const { pid } of tagged) killQuietly(pid, 'SIGKILL'); // SIGKILL ends a stopped process too
    const pids = tagged.map((t) => t.pid);
    const allExited = async (): Promise<boolean> => (await Promise.all(pids.map(readProcState))).every(hasExited);
    const gone = await pollUntil(this.time, allExited, REMOVE_TIMEOUT_MS);
    if (!gone) throw new Error(`processes ${pids.join(', ')} of an earlier incarnation survived SIGKILL`);
    return groups.size;
  }
}

/** kill(-pgid); false when no process is left in the group. */
function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  return killQuietly(-pgid, signal);
}

function killQuietly(target: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(target, signal);
    return true;
  } catch (err) {
    if (isGone(err)) return false;
    throw err;
  }
}

/**
 * The members that are not yet stopped. The main thread's state is what
 * /proc/<pid>/stat shows; a stop is complete only when every thread has
 * taken it, so the threads are checked too once the main one reads T.
 */
async function notStopped(members: number[]): Promise<number[]> {
  const waiting: number[] = [];
  for (const pid of members) {
    if (!(await isStopped(pid))) waiting.push(pid);
  }
  return waiting;
}

async function isStopped(pid: number): Promise<boolean> {
  const state = await readProcState(pid);
  if (hasExited(state)) return true;
  if (state !== 'T') return false;
  for (const tid of await listThreads(pid)) {
    const thread = await readProcStat(pid, tid);
    if (thread && thread.state !== 'T' && !hasExited(thread.state)) return false;
  }
  return true;
}

async function findTagged(prefix: string): Promise<Array<{ pid: number; tag: string }>> {
  const found: Array<{ pid: number; tag: string }> = [];
  for (const pid of await listPids()) {
    if (pid === process.pid) continue;
    let environ: string;
    try {
      environ = await readFile(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue; // gone, or a kernel thread
    }
    const entry = environ.split('\0').find((e) => e.startsWith(prefix));
    if (entry !== undefined) found.push({ pid, tag: entry.slice(TAG_VARIABLE.length + 1) });
  }
  return found;
}
