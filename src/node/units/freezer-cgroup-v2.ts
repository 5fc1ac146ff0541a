import { mkdir } from 'node:fs/promises';
import type { Freezer, SpawnPlan } from './freezer.js';
import {
  CGROUP_V2_MAGIC,
  cgroupSpawnPlan,
  groupDirOf,
  prepareScope,
  readControl,
  awaitGroupFrozen,
  removeGroupTree,
  removeScopeGroups,
  writeControl,
} from './cgroup-dir.js';
import { pollUntil } from './poll-until.js';
import type { TimePorts } from '../../runtime/runtime.js';

// The cgroup v2 freezer: writing 1 to a group's cgroup.freeze asks the kernel
// to stop every task in it; cgroup.events says "frozen 1" once they all are.
// Unlike v1, fatal signals still reach frozen tasks, and cgroup.kill
// (Linux 5.14+) kills a whole group at once, frozen or not.

export async function openCgroupV2Freezer(root: string, scope: string, time: TimePorts): Promise<Freezer> {
  return new CgroupV2Freezer(await prepareScope(root, scope, CGROUP_V2_MAGIC, 'cgroup.freeze'), time);
}

class CgroupV2Freezer implements Freezer {
  readonly kind = 'cgroup-v2' as const;
  readonly detail: string;

  constructor(private readonly scopeDir: string, private readonly time: TimePorts) {
    this.detail = `cgroup v2 cgroup.freeze, groups under ${scopeDir}`;
  }

  async plan(group: string, command: string, args: string[]): Promise<SpawnPlan> {
    const dir = groupDirOf(this.scopeDir, group);
    await mkdir(dir, { recursive: true });
    return cgroupSpawnPlan(dir, command, args);
  }

  async freeze(group: string, pid: number, timeoutMs: number): Promise<void> {
    const dir = groupDirOf(this.scopeDir, group);
    if (!(await writeControl(dir, 'cgroup.freeze', '1'))) {
      throw new Error(`cannot freeze ${group}: cgroup ${dir} is gone`);
    }
    const why = await awaitGroupFrozen(this.time, dir, pid, timeoutMs, () => readFrozen(dir), (frozen) => frozen);
    if (why === null) return;
    throw await thawAfterFailure(dir, `cannot freeze ${group}: ${why}`);
  }

  async thaw(group: string, _pid: number, timeoutMs: number): Promise<void> {
    const dir = groupDirOf(this.scopeDir, group);
    if (!(await writeControl(dir, 'cgroup.freeze', '0'))) return; // gone: nothing left frozen
    const thawed = await pollUntil(this.time, async () => (await readFrozen(dir)) !== true, timeoutMs);
    if (!thawed) throw new Error(`cgroup ${dir} did not thaw within ${timeoutMs} ms`);
  }

  async isFrozen(group: string, _pid: number): Promise<boolean> {
    return (await readFrozen(groupDirOf(this.scopeDir, group))) === true;
  }

  async remove(group: string): Promise<void> {
    await removeGroupTree(this.time, groupDirOf(this.scopeDir, group), releaseV2);
  }

  cleanupScope(): Promise<number> {
    return removeScopeGroups(this.time, this.scopeDir, releaseV2);
  }
}

/** The "frozen" line of cgroup.events; null when the group is gone. */
async function readFrozen(dir: string): Promise<boolean | null> {
  const events = await readControl(dir, 'cgroup.events');
  if (events === null) return null;
  const line = events.split('\n').find((l) => l.startsWith('frozen '));
  if (line === undefined) throw new Error(`${dir}/cgroup.events has no "frozen" line: ${JSON.stringify(events)}`);
  return line === 'frozen 1';
}

/** cgroup.kill where the kernel has it (the SIGKILLs already sent cover older kernels), then unfreeze. */
async function releaseV2(dir: string): Promise<void> {
  await writeControl(dir, 'cgroup.kill', '1');
  await writeControl(dir, 'cgroup.freeze', '0');
}

async function thawAfterFailure(dir: string, why: string): Promise<Error> {
  try {
    await writeControl(dir, 'cgroup.freeze', '0');
    return new Error(why);
  } catch (err) {
    return new Error(`${why}; thawing it again failed too: ${(err as Error).message}`, { cause: err });
  }
}
