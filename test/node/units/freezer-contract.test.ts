// The Freezer contract, checked against every freezer this machine has, with
// real processes: a unit is in its group before its code runs, freeze()
// resolves only when it has really stopped (its counter stops), thaw() lets
// it run again, a freeze that cannot succeed rejects and leaves it thawed
// (ARCHITECTURE §3 invariant 4), and remove()/cleanupScope() leave nothing
// behind, even for frozen units.

import { mkdtemp, rm, access, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Freezer, FreezerKind } from '../../../src/node/units/freezer.js';
import { listThreads, readProcStat, readProcState } from '../../../src/node/units/proc-stat.js';
import {
  AVAILABLE_KINDS,
  STILL_MS,
  V1_ROOT,
  V2_ROOT,
  killGroup,
  lastCount,
  openFreezer,
  pause,
  readText,
  spawnCounter,
  uniqueScope,
  waitCounting,
  waitFor,
  type Spawned,
} from './helpers.js';

const TIMEOUT_MS = 5_000;

function groupDir(kind: FreezerKind, scope: string, group: string): string | null {
  if (kind === 'cgroup-v1') return join(V1_ROOT, 'gridckpt', scope, group);
  if (kind === 'cgroup-v2') return join(V2_ROOT, 'gridckpt', scope, group);
  return null;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** What the kernel itself says about a frozen group or process. */
async function kernelSaysStopped(kind: FreezerKind, dir: string | null, pid: number): Promise<boolean> {
  switch (kind) {
    case 'cgroup-v1':
      return (await readFile(join(dir!, 'freezer.state'), 'utf8')).trim() === 'FROZEN';
    case 'cgroup-v2':
      return (await readFile(join(dir!, 'cgroup.events'), 'utf8')).includes('frozen 1');
    case 'signal': {
      const states = await Promise.all((await listThreads(pid)).map(async (tid) => (await readProcStat(pid, tid))?.state));
      return states.length > 0 && states.every((s) => s === 'T');
    }
  }
}

describe.each(AVAILABLE_KINDS)('freezer %s', (kind) => {
  let scope: string;
  let freezer: Freezer;
  let tmp: string;
  const spawned: Spawned[] = [];

  beforeEach(async () => {
    scope = uniqueScope(kind.replace('cgroup-', ''));
    freezer = await openFreezer(kind, scope);
    tmp = await mkdtemp(join(tmpdir(), 'gridckpt-freezer-'));
  });

  afterEach(async () => {
    for (const s of spawned.splice(0)) killGroup(s.pid);
    // Also the test of cleanup itself: whatever a failed test left, frozen or not, goes.
    try {
      await freezer.cleanupScope();
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    const scopeDir = groupDir(kind, scope, '');
    if (scopeDir) expect(await exists(scopeDir)).toBe(false);
  });

  async function start(group: string): Promise<{ unit: Spawned; out: string; dir: string | null }> {
    const out = join(tmp, `${group}.out`);
    const unit = await spawnCounter(freezer, group, out);
    spawned.push(unit);
    await waitCounting(out);
    return { unit, out, dir: groupDir(kind, scope, group) };
  }

  it('runs the unit inside its group from its first instruction', async () => {
    const { unit, out } = await start('j1.u1');
    const firstLine = (await readText(out)).split('\n')[0]!;
    if (kind === 'cgroup-v1') expect(firstLine).toContain(`freezer:/gridckpt/${scope}/j1.u1`);
    if (kind === 'cgroup-v2') expect(firstLine).toContain(`0::/gridckpt/${scope}/j1.u1`);
    if (kind === 'signal') {
      // No group to enter: the unit carries the tag cleanupScope looks for.
      const environ = await readFile(`/proc/${unit.pid}/environ`, 'utf8');
      expect(environ.split('\0')).toContain(`GRIDCKPT_FREEZER_TAG=${scope}/j1.u1`);
    }
  });

  it('freezes for real: the kernel says stopped and the counter stands still, then runs again after thaw', async () => {
    const { unit, out, dir } = await start('j1.u1');
    await freezer.freeze('j1.u1', unit.pid, TIMEOUT_MS);
    expect(await kernelSaysStopped(kind, dir, unit.pid)).toBe(true);
    expect(await freezer.isFrozen('j1.u1', unit.pid)).toBe(true);
    // v1 frozen tasks sit in the refrigerator (D); SIGSTOP gives T; v2 traps them in S.
    const expected = { 'cgroup-v1': 'D', 'cgroup-v2': 'S', signal: 'T' }[kind];
    expect(await readProcState(unit.pid)).toBe(expected);
    const frozenAt = await lastCount(out);
    await pause(STILL_MS);
    expect(await lastCount(out)).toBe(frozenAt);

    await freezer.thaw('j1.u1', unit.pid, TIMEOUT_MS);
    expect(await freezer.isFrozen('j1.u1', unit.pid)).toBe(false);
    expect(await kernelSaysStopped(kind, dir, unit.pid)).toBe(false);
    await waitCounting(out, frozenAt);
  });

  it('rejects freezing a unit whose process is gone, and leaves the group thawed', async () => {
    const { unit, dir } = await start('j1.gone');
    process.kill(unit.pid, 'SIGKILL');
    await unit.exited; // reaped: the pid is gone, the (empty) group is still there
    await expect(freezer.freeze('j1.gone', unit.pid, TIMEOUT_MS)).rejects.toThrow(new RegExp(`${unit.pid}`));
    expect(await freezer.isFrozen('j1.gone', unit.pid)).toBe(false);
    if (dir) expect(await exists(dir)).toBe(true);
  });

  it('removes a frozen unit: it dies and its group is deleted', async () => {
    const { unit, dir } = await start('j1.u1');
    await freezer.freeze('j1.u1', unit.pid, TIMEOUT_MS);
    await freezer.remove('j1.u1');
    if (kind === 'signal') {
      // Signals leave nothing to delete; the process is the supervisor's to kill.
      expect(await freezer.isFrozen('j1.u1', unit.pid)).toBe(true);
      killGroup(unit.pid);
    } else {
      expect(await exists(dir!)).toBe(false);
    }
    expect((await unit.exited).signal).toBe('SIGKILL');
  });

  it('cleanupScope kills and removes the frozen groups an earlier incarnation left', async () => {
    const a = await start('j1.a');
    const b = await start('j2.b');
    await freezer.freeze('j1.a', a.unit.pid, TIMEOUT_MS);
    // The "earlier incarnation" is gone: a fresh Freezer for the same scope knows nothing of these units.
    const restarted = await openFreezer(kind, scope);
    expect(await restarted.cleanupScope()).toBe(2);
    expect((await a.unit.exited).signal).toBe('SIGKILL');
    expect((await b.unit.exited).signal).toBe('SIGKILL');
    if (a.dir) expect(await exists(join(a.dir, '..'))).toBe(false);
    expect(await restarted.cleanupScope()).toBe(0);
  });

  it('never leaves a unit half frozen when the deadline is too short: stopped for real, or thawed', async () => {
    const { unit, out, dir } = await start('j1.u1');
    // With 0 or 1 ms the freezer gets one or two looks at the unit: some
    // attempts finish in time, some do not (on this machine cgroup v1 mostly
    // does not, v2 and signals mostly do). Both outcomes must be clean.
    const outcomes = new Set<string>();
    for (let attempt = 0; attempt < 20; attempt++) {
      const timeoutMs = attempt % 2;
      const failure = await freezer.freeze('j1.u1', unit.pid, timeoutMs).then(
        () => null,
        (err: Error) => err,
      );
      if (failure === null) {
        outcomes.add('frozen');
        expect(await kernelSaysStopped(kind, dir, unit.pid)).toBe(true);
        await freezer.thaw('j1.u1', unit.pid, TIMEOUT_MS);
      } else {
        outcomes.add('timed out');
        expect(failure.message).toMatch(new RegExp(`within ${timeoutMs} ms`));
        expect(await freezer.isFrozen('j1.u1', unit.pid)).toBe(false);
      }
      expect(await kernelSaysStopped(kind, dir, unit.pid)).toBe(false);
    }
    expect(outcomes.size).toBeGreaterThan(0);
    const n = await lastCount(out);
    await waitCounting(out, n);
  });
});

describe('freezer signal', () => {
  it('stops every member of the process group and every thread', async () => {
    const scope = uniqueScope('sigpg');
    const freezer = await openFreezer('signal', scope);
    const tmp = await mkdtemp(join(tmpdir(), 'gridckpt-freezer-'));
    // A shell that starts two counters in its own process group and waits.
    const plan = await freezer.plan('j.pg', '/bin/sh', [
      '-c',
      `"${process.execPath}" -e "for(;;){}" & "${process.execPath}" -e "for(;;){}" & wait`,
    ]);
    const { spawn } = await import('node:child_process');
    const child = spawn(plan.command, plan.args, { detached: true, stdio: 'ignore' });
    const pid = child.pid!;
    try {
      const { listProcessGroup } = await import('../../../src/node/units/proc-stat.js');
      await waitFor('three members', async () => (await listProcessGroup(pid)).length === 3);
      await freezer.freeze('j.pg', pid, TIMEOUT_MS);
      for (const member of await listProcessGroup(pid)) {
        for (const tid of await listThreads(member)) expect((await readProcStat(member, tid))?.state).toBe('T');
      }
      await freezer.thaw('j.pg', pid, TIMEOUT_MS);
      for (const member of await listProcessGroup(pid)) expect(await readProcState(member)).not.toBe('T');
    } finally {
      killGroup(pid);
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
