// The unit supervisor with real processes and every freezer this machine
// has: units are spawned in their own groups with the right environment and
// logs; exits are reported with code or signal; freezeJob stops every unit
// for real or, when one cannot be frozen, leaves all of them running
// (ARCHITECTURE §3 invariant 4, "always thaw"); stopJob ends units even when
// they are frozen or ignore SIGTERM, and removes their groups.

import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Freezer, FreezerKind } from '../../../src/node/units/freezer.js';
import { readProcState } from '../../../src/node/units/proc-stat.js';
import { UnitSupervisor, type UnitInfo, type UnitSpec } from '../../../src/node/units/unit-supervisor.js';
import {
  AVAILABLE_KINDS,
  COUNTER_SCRIPT,
  STILL_MS,
  V1_ROOT,
  V2_ROOT,
  lastCount,
  openFreezer,
  pause,
  readText,
  spinUntilZombie,
  uniqueScope,
  waitCounting,
} from './helpers.js';
import { realRuntime } from '../../../src/wire/real-clients.js';

const FREEZE_TIMEOUT_MS = 5_000;

function counterUnit(unitId: string, env: Record<string, string> = {}): UnitSpec {
  return { unitId, command: process.execPath, args: ['-e', COUNTER_SCRIPT], env };
}

function scriptUnit(unitId: string, script: string, env: Record<string, string> = {}): UnitSpec {
  return { unitId, command: process.execPath, args: ['-e', script], env };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

describe.each(AVAILABLE_KINDS)('unit supervisor with the %s freezer', (kind: FreezerKind) => {
  let scope: string;
  let freezer: Freezer;
  let logDir: string;
  let sup: UnitSupervisor;
  let exits: UnitInfo[];
  let exitWaiters: Array<() => void>;
  /** A freeze of this group fails (an injected fault at the freezer port: a cgroup write that fails, say). */
  let failFreezeOf: string | null;

  /** Resolves with the exit report of a unit, from the onExit event. */
  async function exitOf(jobId: string, unitId: string): Promise<UnitInfo> {
    for (;;) {
      const info = exits.find((e) => e.jobId === jobId && e.unitId === unitId);
      if (info) return info;
      await new Promise<void>((resolve) => exitWaiters.push(resolve));
    }
  }

  beforeEach(async () => {
    scope = uniqueScope(`sup-${kind.replace('cgroup-', '')}`);
    freezer = await openFreezer(kind, scope);
    failFreezeOf = null;
    const real = freezer;
    const faulty = new Proxy(real, {
      get(target, prop) {
        if (prop === 'freeze') {
          return (group: string, pid: number, timeoutMs: number) => group === failFreezeOf
            ? Promise.reject(new Error(`injected: freezing ${group} failed`))
            : target.freeze(group, pid, timeoutMs);
        }
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    logDir = await mkdtemp(join(tmpdir(), 'gridckpt-units-'));
    exits = [];
    exitWaiters = [];
    const onExit = (info: UnitInfo): void => {
      exits.push(info);
      for (const w of exitWaiters.splice(0)) w();
    };
    sup = new UnitSupervisor({ freezer: faulty, logDir, freezeTimeoutMs: FREEZE_TIMEOUT_MS, onExit, timers: realRuntime().timers });
  });

  afterEach(async () => {
    try {
      await sup.shutdown(0);
    } finally {
      await freezer.cleanupScope();
      await rm(logDir, { recursive: true, force: true });
    }
  });

  const logOf = (jobId: string, unitId: string): string => join(logDir, `${jobId}+${unitId}.log`);
  const groupDir = (group: string): string | null =>
    kind === 'cgroup-v1'
      ? join(V1_ROOT, 'gridckpt', scope, group)
      : kind === 'cgroup-v2'
        ? join(V2_ROOT, 'gridckpt', scope, group)
        : null;

  it('starts a unit with the merged environment and its output in the log', async () => {
    const script = `console.log([process.env.A, process.env.B, process.env.PATH ? 'path' : 'nopath'].join(' '))`;
    const info = await sup.start('job1', scriptUnit('u1', script, { A: 'spec', B: 'spec' }), { B: 'extra' });
    expect(info).toMatchObject({ jobId: 'job1', unitId: 'u1', state: 'running', starts: 1, exitCode: null, signal: null });
    expect(info.pid).toBeGreaterThan(0);
    expect(sup.jobs()).toEqual(['job1']);
    const [done] = await sup.waitExited('job1');
    expect(done).toMatchObject({ state: 'exited', exitCode: 0, signal: null });
    expect(await readText(logOf('job1', 'u1'))).toBe('spec extra path\n');
  });

  it('reports exits with code or signal, and counts restarts', async () => {
    await sup.start('job1', scriptUnit('code', 'console.error("bye"); process.exit(3)'), {});
    const killed = await sup.start('job1', counterUnit('killed'), {});
    await waitCounting(logOf('job1', 'killed'));
    process.kill(killed.pid, 'SIGKILL');
    const units = await sup.waitExited('job1');
    expect(units.map((u) => [u.unitId, u.state, u.exitCode, u.signal])).toEqual([
      ['code', 'exited', 3, null],
      ['killed', 'exited', null, 'SIGKILL'],
    ]);
    expect(exits.map((u) => u.unitId).sort()).toEqual(['code', 'killed']);
    expect(await readText(logOf('job1', 'code'))).toBe('bye\n');

    const again = await sup.start('job1', scriptUnit('code', 'console.error("bye"); process.exit(3)'), {});
    expect(again.starts).toBe(2);
    await sup.waitExited('job1');
    expect(await readText(logOf('job1', 'code'))).toBe('bye\nbye\n'); // appended
    await sup.stopJob('job1', 0); // nothing left to stop: it waits for the groups removed on exit
    if (groupDir('job1+code')) expect(await exists(groupDir('job1+code')!)).toBe(false);
  });

  it('refuses to start a unit that is already running', async () => {
    await sup.start('job1', counterUnit('u1'), {});
    await expect(sup.start('job1', counterUnit('u1'), {})).rejects.toThrow(/already running/);
  });

  it('freezes every unit of the job for real and thaws them all', async () => {
    const [a, b] = [await sup.start('job1', counterUnit('a'), {}), await sup.start('job1', counterUnit('b'), {})];
    await sup.start('job2', counterUnit('other'), {});
    for (const u of ['a', 'b']) await waitCounting(logOf('job1', u));
    await waitCounting(logOf('job2', 'other'));

    await sup.freezeJob('job1');
    expect(sup.units('job1').map((u) => u.state)).toEqual(['frozen', 'frozen']);
    expect(await freezer.isFrozen('job1+a', a.pid)).toBe(true);
    expect(await freezer.isFrozen('job1+b', b.pid)).toBe(true);
    const frozenAt = [await lastCount(logOf('job1', 'a')), await lastCount(logOf('job1', 'b'))];
    const otherAt = await lastCount(logOf('job2', 'other'));
    await pause(STILL_MS);
    expect([await lastCount(logOf('job1', 'a')), await lastCount(logOf('job1', 'b'))]).toEqual(frozenAt);
    await waitCounting(logOf('job2', 'other'), otherAt); // another job is not touched

    await sup.thawJob('job1');
    expect(sup.units('job1').map((u) => u.state)).toEqual(['running', 'running']);
    await waitCounting(logOf('job1', 'a'), frozenAt[0]);
    await waitCounting(logOf('job1', 'b'), frozenAt[1]);
  });

  it('freezes a unit started a moment ago, before its wrapper has even entered the group', async () => {
    // start() resolves at exec of the wrapper; joining the group happens a little later.
    const units = [];
    for (let i = 0; i < 5; i++) units.push(await sup.start('job1', counterUnit(`u${i}`), {}));
    await sup.freezeJob('job1');
    for (const u of units) expect(await freezer.isFrozen(`job1+${u.unitId}`, u.pid)).toBe(true);
    await sup.thawJob('job1');
    for (const u of units) await waitCounting(logOf('job1', u.unitId));
  });

  it('a unit that died before the freeze is no failure: the others freeze, and its exit is recorded (issue 8)', async () => {
    const a = await sup.start('job1', counterUnit('a'), {});
    const b = await sup.start('job1', counterUnit('b'), {});
    await waitCounting(logOf('job1', 'a'));
    await waitCounting(logOf('job1', 'b'));
    // b dies; until the event loop runs, the supervisor still believes it is running.
    process.kill(b.pid, 'SIGKILL');
    spinUntilZombie(b.pid);
    const freezing = sup.freezeJob('job1');
    expect(sup.units('job1').find((u) => u.unitId === 'b')?.state).toBe('running');
    await freezing;
    expect(await freezer.isFrozen('job1+a', a.pid)).toBe(true);
    expect(await exitOf('job1', 'b')).toMatchObject({ state: 'exited', signal: 'SIGKILL' });
    await sup.thawJob('job1');
    await waitCounting(logOf('job1', 'a'), await lastCount(logOf('job1', 'a')));
  });

  it('a freeze that fails on one live unit leaves every unit of the job running, and names the unit', async () => {
    const a = await sup.start('job1', counterUnit('a'), {});
    const b = await sup.start('job1', counterUnit('b'), {});
    await waitCounting(logOf('job1', 'a'));
    await waitCounting(logOf('job1', 'b'));
    failFreezeOf = 'job1+b';
    await expect(sup.freezeJob('job1')).rejects.toThrow(/cannot freeze job job1: unit b: injected: freezing job1\+b failed/);
    for (const u of [a, b]) {
      expect(await freezer.isFrozen(`job1+${u.unitId}`, u.pid)).toBe(false);
      expect(sup.units('job1').find((x) => x.unitId === u.unitId)?.state).toBe('running');
      await waitCounting(logOf('job1', u.unitId), await lastCount(logOf('job1', u.unitId)));
    }
  });

  it('stopJob ends frozen units and removes their groups', async () => {
    const a = await sup.start('job1', counterUnit('a'), {});
    await sup.start('job1', counterUnit('b'), {});
    await waitCounting(logOf('job1', 'a'));
    await waitCounting(logOf('job1', 'b'));
    await sup.freezeJob('job1');
    await sup.stopJob('job1', 5_000);
    // Thawed first, so the SIGTERM was delivered and acted on, not SIGKILL.
    expect(sup.units('job1').map((u) => [u.state, u.signal])).toEqual([
      ['exited', 'SIGTERM'],
      ['exited', 'SIGTERM'],
    ]);
    expect(await readProcState(a.pid)).toBeNull();
    for (const g of ['job1+a', 'job1+b']) if (groupDir(g)) expect(await exists(groupDir(g)!)).toBe(false);
  });

  it('stopJob escalates to SIGKILL after the grace period, even for a frozen unit that ignores SIGTERM', async () => {
    await sup.start('job1', counterUnit('stubborn', { IGNORE_SIGTERM: '1' }), {});
    await waitCounting(logOf('job1', 'stubborn'));
    await sup.freezeJob('job1');
    const t0 = performance.now();
    await sup.stopJob('job1', 300);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(sup.units('job1')[0]).toMatchObject({ state: 'exited', signal: 'SIGKILL' });
    if (groupDir('job1+stubborn')) expect(await exists(groupDir('job1+stubborn')!)).toBe(false);
  });

  it('shutdown stops every job', async () => {
    await sup.start('job1', counterUnit('a'), {});
    await sup.start('job2', counterUnit('b'), {});
    await sup.freezeJob('job2');
    await sup.shutdown(1_000);
    expect([...sup.units('job1'), ...sup.units('job2')].every((u) => u.state === 'exited')).toBe(true);
  });

  it('treats a job it does not know as one with no units', async () => {
    await sup.freezeJob('nope');
    await sup.thawJob('nope');
    await sup.stopJob('nope', 10);
    expect(sup.units('nope')).toEqual([]);
    expect(await sup.waitExited('nope')).toEqual([]);
  });
});
