import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_SCRIPT } from '../../src/node/agent-process.js';
import { DEFAULT_CGROUP_V1_ROOT, DEFAULT_CGROUP_V2_ROOT } from '../../src/node/units/freezer.js';
import { alive } from '../helpers/pid.js';

// Issue 8: Ctrl-C during `up --demo` left its work dir and the freezer
// cgroups (of the agent the drill killed with -9, whose units stay frozen)
// behind. SIGINT now stops every service, removes those cgroups and the
// temp work dir, and exits 130.

/** The cgroup scope dirs of the agents an `up` started (their node ids end with its pid). */
function scopesOf(upPid: number): string[] {
  return [DEFAULT_CGROUP_V1_ROOT, DEFAULT_CGROUP_V2_ROOT].flatMap((root) => {
    const dir = join(root, 'gridckpt');
    return existsSync(dir) ? readdirSync(dir).filter((s) => s.endsWith(`-${upPid}`)).map((s) => join(dir, s)) : [];
  });
}

describe('gridckpt up --demo interrupted', () => {
  it('SIGINT after the drill killed an agent: every service stopped, cgroups and work dir removed, exit 130', async () => {
    const child = spawn(process.execPath, [CLI_SCRIPT, 'up', '--demo', '--ops', '400000', '--clusters', '2', '--nodes', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    let workDir = '';
    let killed = false;
    for await (const text of createInterface({ input: child.stdout })) {
      const m = /^data under (\S+)/.exec(text);
      if (m) workDir = m[1]!;
      // The drill has just killed an agent with -9: its units and cgroups are left for the cleanup to remove.
      if (text.startsWith('kill -9 of node agent')) {
        killed = true;
        break;
      }
    }
    expect(killed).toBe(true);
    expect(existsSync(workDir)).toBe(true);
    const children = spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
    expect(children.length).toBeGreaterThan(0);
    child.kill('SIGINT');
    expect(await exited, err).toBe(130);
    expect(err).toContain('SIGINT: stopping every service and cleaning up');
    expect(existsSync(workDir)).toBe(false);
    expect(children.filter(alive)).toEqual([]);
    expect(scopesOf(child.pid!)).toEqual([]);
  }, 300_000);
});
