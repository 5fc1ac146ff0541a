// What is peculiar to the cgroup v1 freezer, with the real hierarchy at
// /sys/fs/cgroup/freezer: a frozen task does not die from SIGKILL until it is
// thawed (so remove() and stopJob must thaw after killing), a unit may
// make child groups inside its own, which freeze with it and must be
// removed with it, and an empty keeper group stays frozen so that no freeze
// or thaw switches the kernel's freezer on or off.

import { spawn } from 'node:child_process';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Freezer } from '../../../src/node/units/freezer.js';
import { KEEPER_GROUP } from '../../../src/node/units/freezer-cgroup-v1.js';
import { readProcState } from '../../../src/node/units/proc-stat.js';
import { HAVE_V1, STILL_MS, V1_ROOT, killGroup, openFreezer, pause, spawnCounter, uniqueScope, waitCounting, waitFor } from './helpers.js';

const TIMEOUT_MS = 5_000;

describe.skipIf(!HAVE_V1)('cgroup v1 freezer (needs /sys/fs/cgroup/freezer)', () => {
  let scope: string;
  let freezer: Freezer;
  let tmp: string;
  const pids: number[] = [];

  beforeEach(async () => {
    scope = uniqueScope('v1');
    freezer = await openFreezer('cgroup-v1', scope);
    tmp = await mkdtemp(join(tmpdir(), 'gridckpt-v1-'));
  });

  afterEach(async () => {
    for (const pid of pids.splice(0)) killGroup(pid);
    try {
      await freezer.cleanupScope();
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('a frozen task ignores SIGKILL until it is thawed', async () => {
    const out = join(tmp, 'u.out');
    const unit = await spawnCounter(freezer, 'j.u', out);
    pids.push(unit.pid);
    await waitCounting(out);
    await freezer.freeze('j.u', unit.pid, TIMEOUT_MS);
    let exited = false;
    void unit.exited.then(() => (exited = true));
    process.kill(unit.pid, 'SIGKILL');
    await pause(STILL_MS);
    expect(exited).toBe(false);
    expect(await readProcState(unit.pid)).toBe('D');
    await freezer.thaw('j.u', unit.pid, TIMEOUT_MS);
    expect((await unit.exited).signal).toBe('SIGKILL');
  });

  const busy = `"${process.execPath}" -e "for(;;){}"`;

  function startShell(group: string, script: string): Promise<{ pid: number; exited: Promise<unknown> }> {
    return freezer.plan(group, '/bin/sh', ['-c', script]).then((plan) => {
      const child = spawn(plan.command, plan.args, { detached: true, stdio: 'ignore' });
      pids.push(child.pid!);
      return { pid: child.pid!, exited: new Promise((resolve) => child.once('exit', resolve)) };
    });
  }

  async function soleTask(procsFile: string): Promise<number> {
    await waitFor(`a task in ${procsFile}`, async () => (await readFile(procsFile, 'utf8').catch(() => '')).trim() !== '');
    return Number((await readFile(procsFile, 'utf8')).trim());
  }

  it('freezes and removes the child groups a unit made inside its own', async () => {
    const dir = join(V1_ROOT, 'gridckpt', scope, 'j.nest');
    // The unit makes <group>/sub, starts a busy child that moves itself there, and stays busy itself.
    const unit = await startShell(
      'j.nest',
      `mkdir "${dir}/sub" && /bin/sh -c 'echo $$ > "${dir}/sub/cgroup.procs" && exec ${busy}' & exec ${busy}`,
    );
    const inner = await soleTask(join(dir, 'sub', 'cgroup.procs'));
    expect(inner).not.toBe(unit.pid);

    await freezer.freeze('j.nest', unit.pid, TIMEOUT_MS);
    expect((await readFile(join(dir, 'sub', 'freezer.state'), 'utf8')).trim()).toBe('FROZEN');
    expect(await readProcState(inner)).toBe('D');

    await freezer.remove('j.nest');
    await unit.exited;
    await waitFor('the inner task to die', async () => [null, 'Z'].includes(await readProcState(inner)));
    await expect(access(dir)).rejects.toThrow(/ENOENT/);
  });

  it('finds the unit when it moved itself into a child group of its own', async () => {
    const dir = join(V1_ROOT, 'gridckpt', scope, 'j.moved');
    const unit = await startShell('j.moved', `mkdir "${dir}/sub" && echo $$ > "${dir}/sub/cgroup.procs" && exec ${busy}`);
    expect(await soleTask(join(dir, 'sub', 'cgroup.procs'))).toBe(unit.pid);
    await freezer.freeze('j.moved', unit.pid, TIMEOUT_MS);
    expect(await readProcState(unit.pid)).toBe('D');
    await freezer.thaw('j.moved', unit.pid, TIMEOUT_MS);
    await freezer.remove('j.moved');
    await unit.exited;
    await expect(access(dir)).rejects.toThrow(/ENOENT/);
  });

  it('keeps an empty keeper group frozen from its first freeze on; cleanupScope removes it without counting it', async () => {
    const keeper = join(V1_ROOT, 'gridckpt', scope, KEEPER_GROUP);
    const out = join(tmp, 'k.out');
    const unit = await spawnCounter(freezer, 'j.k', out);
    pids.push(unit.pid);
    await waitCounting(out);
    await expect(access(keeper)).rejects.toThrow(/ENOENT/); // not before a freeze
    await freezer.freeze('j.k', unit.pid, TIMEOUT_MS);
    await freezer.thaw('j.k', unit.pid, TIMEOUT_MS);
    expect((await readFile(join(keeper, 'freezer.state'), 'utf8')).trim()).toBe('FROZEN');
    expect((await readFile(join(keeper, 'cgroup.procs'), 'utf8')).trim()).toBe('');
    expect(await readProcState(unit.pid)).not.toBe('D'); // the unit itself runs again
    killGroup(unit.pid);
    await unit.exited;
    expect(await freezer.cleanupScope()).toBe(1); // the unit's group; the keeper is not counted
    await expect(access(keeper)).rejects.toThrow(/ENOENT/);
  });
});
