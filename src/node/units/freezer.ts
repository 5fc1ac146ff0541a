import { checkName } from '../../common/names.js';
import { openCgroupV1Freezer } from './freezer-cgroup-v1.js';
import { openCgroupV2Freezer } from './freezer-cgroup-v2.js';
import { openSignalFreezer } from './freezer-signal.js';
import type { TimePorts } from '../../runtime/runtime.js';

// A checkpoint must stop a job's units for real before it snapshots their
// pages, and must always let them go again (ARCHITECTURE §3 invariant 4).
// Three mechanisms can do it; this file is the one contract they share and
// the choice among them.
//
// - cgroup v1 freezer: the kernel freezes every task of the unit's cgroup,
//   including children the unit forked, and says when it is done
//   (freezer.state reads FROZEN). A frozen task does not even die from
//   SIGKILL until it is thawed, so removal thaws after killing.
// - cgroup v2 cgroup.freeze: the same, reported by cgroup.events "frozen 1";
//   fatal signals do reach frozen tasks, and cgroup.kill kills a whole group.
// - SIGSTOP/SIGCONT to the unit's process group: works anywhere, but a unit
//   can escape by changing its process group, and a unit can see the signals.
//
// Units are grouped as <root>/gridckpt/<scope>/<jobId>.<unitId>. The scope
// names this agent (e.g. its node id), so a restarted agent can find and
// remove the groups its previous incarnation left behind (cleanupScope).

export type FreezerKind = 'cgroup-v1' | 'cgroup-v2' | 'signal';

/** How to exec a unit so that it is inside its group before it runs user code. */
export interface SpawnPlan {
  command: string;
  args: string[];
}

export interface Freezer {
  readonly kind: FreezerKind;
  /** Where or how it freezes, for status output: a cgroup directory, or the signals used. */
  readonly detail: string;
  /** Creates the group (cgroups) and says how to exec the unit inside it. */
  plan(group: string, command: string, args: string[]): Promise<SpawnPlan>;
  /** Resolves only once every task of the group is really stopped; on timeout or failure thaws and rejects. */
  freeze(group: string, pid: number, timeoutMs: number): Promise<void>;
  /** Resolves once the group runs again; a group that is gone counts as thawed. */
  thaw(group: string, pid: number, timeoutMs: number): Promise<void>;
  isFrozen(group: string, pid: number): Promise<boolean>;
  /** Kills what is left in the group (thawing so that SIGKILL lands) and deletes it. */
  remove(group: string): Promise<void>;
  /** At startup: kills and deletes every group an earlier incarnation of this scope left; returns how many. */
  cleanupScope(): Promise<number>;
}

export interface DetectOptions {
  /** Names this agent's groups; [A-Za-z0-9._-], e.g. the node id. */
  scope: string;
  /** Where the cgroup v1 freezer hierarchy is mounted; default /sys/fs/cgroup/freezer. */
  cgroupV1Root?: string;
  /** Where the cgroup v2 hierarchy is mounted; default /sys/fs/cgroup. */
  cgroupV2Root?: string;
  /** The clock and timers a freezer polls with (the kernel says nothing when a freeze is done). */
  time: TimePorts;
}

export const DEFAULT_CGROUP_V1_ROOT = '/sys/fs/cgroup/freezer';
export const DEFAULT_CGROUP_V2_ROOT = '/sys/fs/cgroup';

/**
 * Picks the freezer. 'auto' takes cgroup v1 if its freezer hierarchy is
 * mounted and writable, else cgroup v2 if cgroup.freeze is usable, else
 * signals, and the detail of the one it picks says why the others were
 * skipped. An explicit kind that cannot work here is an Error naming it and
 * saying why. Probing creates <root>/gridckpt/<scope> (it is kept: it is
 * where this scope's groups go).
 */
export async function detectFreezer(preference: 'auto' | FreezerKind, opts: DetectOptions): Promise<Freezer> {
  const scope = checkName('freezer scope', opts.scope);
  const v1Root = opts.cgroupV1Root ?? DEFAULT_CGROUP_V1_ROOT;
  const v2Root = opts.cgroupV2Root ?? DEFAULT_CGROUP_V2_ROOT;
  switch (preference) {
    case 'cgroup-v1':
      return explicit('cgroup-v1', openCgroupV1Freezer(v1Root, scope, opts.time));
    case 'cgroup-v2':
      return explicit('cgroup-v2', openCgroupV2Freezer(v2Root, scope, opts.time));
    case 'signal':
      return explicit('signal', openSignalFreezer(scope, '', opts.time));
    case 'auto': {
      const skipped: string[] = [];
      for (const [kind, open] of [
        ['cgroup-v1', () => openCgroupV1Freezer(v1Root, scope, opts.time)],
        ['cgroup-v2', () => openCgroupV2Freezer(v2Root, scope, opts.time)],
      ] as const) {
        try {
          return await open();
        } catch (err) {
          skipped.push(`${kind} unavailable: ${(err as Error).message}`);
        }
      }
      return explicit('signal', openSignalFreezer(scope, skipped.join('; '), opts.time));
    }
    default: {
      const never: never = preference;
      throw new Error(`unknown freezer preference ${JSON.stringify(never)}`);
    }
  }
}

async function explicit(kind: FreezerKind, opening: Promise<Freezer>): Promise<Freezer> {
  try {
    return await opening;
  } catch (err) {
    throw new Error(`freezer ${kind} is not available: ${(err as Error).message}`, { cause: err });
  }
}
