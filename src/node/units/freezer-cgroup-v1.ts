import { mkdir } from 'node:fs/promises';
import type { Freezer, SpawnPlan } from './freezer.js';
import {
  CGROUP_V1_MAGIC,
  cgroupSpawnPlan,
  groupDirOf,
  prepareScope,
  readControl,
  awaitGroupFrozen,
  REMOVE_TIMEOUT_MS,
  removeGroupTree,
  removeScopeGroups,
  rmdirGroup,
  writeControl,
} from './cgroup-dir.js';
import { pollUntil } from './poll-until.js';
import type { TimePorts } from '../../runtime/runtime.js';

// The cgroup v1 freezer: writing FROZEN to a group's freezer.state asks the
// kernel to freeze every task in it; the file reads FREEZING until the last
// one is in the refrigerator, then FROZEN. Frozen tasks show as state D in
// /proc, not T, and nothing the unit does can notice or undo it. The trap:
// a frozen task does not die from SIGKILL until it is thawed, so every path
// that kills (remove, cleanupScope) sends SIGKILL first and thaws after.
//
// The keeper: the kernel enables its freezer checks (a static key,
// legacy_freezer.c freezer_active) when the first group on the host freezes
// and disables them when the last one thaws; each switch patches kernel
// code and made every freezer.state write of a lone freeze or thaw take
// ~1.3 ms (measured here: 13-60 us with the key left on). From its first
// freeze on, this freezer keeps an empty group of its scope, KEEPER_GROUP,
// frozen, so a unit's freeze and thaw never switch it. cleanupScope thaws
// and removes the keeper (it is not one of the groups it counts); a keeper
// that cannot be made only leaves the freezes as slow as before.

/** The empty group kept frozen (see above); no '+' in it, as there is in every unit group (<jobId>+<unitId>, unit-supervisor.ts). */
export const KEEPER_GROUP = 'keep-frozen';

export async function openCgroupV1Freezer(root: string, scope: string, time: TimePorts): Promise<Freezer> {
  return new CgroupV1Freezer(await prepareScope(root, scope, CGROUP_V1_MAGIC, 'freezer.state'), time);
}

class CgroupV1Freezer implements Freezer {
  readonly kind = 'cgroup-v1' as const;
  readonly detail: string;
  private keeper: Promise<void> | null = null;

  constructor(private readonly scopeDir: string, private readonly time: TimePorts) {
    this.detail = `cgroup v1 freezer, groups under ${scopeDir}`;
  }

  async plan(group: string, command: string, args: string[]): Promise<SpawnPlan> {
    const dir = groupDirOf(this.scopeDir, group);
    await mkdir(dir, { recursive: true }); // recursive: cleanupScope may have removed the scope directory
    return cgroupSpawnPlan(dir, command, args);
  }

  async freeze(group: string, pid: number, timeoutMs: number): Promise<void> {
    await this.keepFreezerOn();
    const dir = groupDirOf(this.scopeDir, group);
    if (!(await writeControl(dir, 'freezer.state', 'FROZEN'))) {
      throw new Error(`cannot freeze ${group}: cgroup ${dir} is gone`);
    }
    const why = await awaitGroupFrozen(this.time, dir, pid, timeoutMs, () => readControl(dir, 'freezer.state'), (s) => s === 'FROZEN');
    if (why === null) return;
    throw await thawAfterFailure(dir, `cannot freeze ${group}: ${why}`);
  }

  async thaw(group: string, _pid: number, timeoutMs: number): Promise<void> {
    const dir = groupDirOf(this.scopeDir, group);
    if (!(await writeControl(dir, 'freezer.state', 'THAWED'))) return; // gone: nothing left frozen
    let state: string | null = null;
    const thawed = await pollUntil(this.time, async () => {
      state = await readControl(dir, 'freezer.state');
      return state === 'THAWED' || state === null;
    }, timeoutMs);
    if (!thawed) throw new Error(`cgroup ${dir} did not thaw within ${timeoutMs} ms (freezer.state ${state})`);
  }

  async isFrozen(group: string, _pid: number): Promise<boolean> {
    return (await readControl(groupDirOf(this.scopeDir, group), 'freezer.state')) === 'FROZEN';
  }

  async remove(group: string): Promise<void> {
    await removeGroupTree(this.time, groupDirOf(this.scopeDir, group), releaseV1);
  }

  async cleanupScope(): Promise<number> {
    this.keeper = null;
    const keeper = groupDirOf(this.scopeDir, KEEPER_GROUP);
    await releaseV1(keeper);
    await rmdirGroup(this.time, keeper, this.time.clock.nowMs() + REMOVE_TIMEOUT_MS);
    return removeScopeGroups(this.time, this.scopeDir, releaseV1);
  }

  /** The keeper frozen once (see above); best effort. */
  private keepFreezerOn(): Promise<void> {
    this.keeper ??= (async () => {
      const dir = groupDirOf(this.scopeDir, KEEPER_GROUP);
      await mkdir(dir, { recursive: true });
      await writeControl(dir, 'freezer.state', 'FROZEN');
    })().catch(() => undefined);
    return this.keeper;
  }
}

/** Thawing is what lets an already-sent SIGKILL land on a frozen task. */
async function releaseV1(dir: string): Promise<void> {
  await writeControl(dir, 'freezer.state', 'THAWED');
}

async function thawAfterFailure(dir: string, why: string): Promise<Error> {
  try {
    await writeControl(dir, 'freezer.state', 'THAWED');
    return new Error(why);
  } catch (err) {
    return new Error(`${why}; thawing it again failed too: ${(err as Error).message}`, { cause: err });
  }
}
