import { existsSync, writeFileSync, watch } from 'node:fs';
import { join } from 'node:path';

// Failpoints let crash tests stop a real process at an exact step, the way
// fail-rs and FoundationDB's buggify do. GRIDCKPT_FAILPOINTS holds a comma
// list of `name=action`:
//   kill   SIGKILL this process there (kill@N: at the Nth time it is reached);
//   error  throw there;
//   wait   (async points only) create <GRIDCKPT_FAILPOINT_DIR>/<name>.hit and
//          wait until <name>.release appears, so a test can look at the
//          system while it stands at that step;
//   switch throw there while <GRIDCKPT_FAILPOINT_DIR>/<name>.on exists, so a
//          test can cut a link (a network partition) and heal it later;
//   hold   (async points only) as wait, but only while <name>.on exists: a
//          test arms it when it wants one message held back (a deposed
//          leader's late call, docs/grid-ha.md).
// Unset in production: every call is one map lookup.

type FailAction = 'kill' | 'error' | 'wait' | 'switch' | 'hold';

/** kill@N: the hit on which a kill point fires (1: the first). */
const killAt = new Map<string, number>();
const hits = new Map<string, number>();

function parse(spec: string | undefined): Map<string, FailAction> {
  const points = new Map<string, FailAction>();
  if (!spec) return points;
  for (const item of spec.split(',')) {
    const [name, raw] = item.trim().split('=');
    if (!name) continue;
    const at = /^kill@([1-9][0-9]*)$/.exec(raw ?? '');
    if (at) killAt.set(name, Number(at[1]));
    const action = at ? 'kill' : raw;
    if (action !== 'kill' && action !== 'error' && action !== 'wait' && action !== 'switch' && action !== 'hold') {
      throw new Error(`GRIDCKPT_FAILPOINTS: bad action ${JSON.stringify(action)} for ${name} (use kill, error, wait, switch or hold)`);
    }
    points.set(name, action);
  }
  return points;
}

const active = parse(process.env['GRIDCKPT_FAILPOINTS']);

export function failpoint(name: string): void {
  const action = active.get(name);
  if (action === undefined) return;
  if (action === 'switch') {
    const dir = process.env['GRIDCKPT_FAILPOINT_DIR'];
    if (!dir) throw new Error(`failpoint ${name}=switch needs GRIDCKPT_FAILPOINT_DIR`);
    if (!existsSync(join(dir, `${name}.on`))) return;
    throw new Error(`failpoint ${name} is switched on`);
  }
  if (action === 'kill') {
    const n = (hits.get(name) ?? 0) + 1;
    hits.set(name, n);
    if (n < (killAt.get(name) ?? 1)) return;
    process.kill(process.pid, 'SIGKILL');
  }
  throw new Error(`failpoint ${name} fired`);
}

export async function failpointAsync(name: string): Promise<void> {
  const action = active.get(name);
  if (action === undefined) return;
  if (action !== 'wait' && action !== 'hold') return failpoint(name);
  const dir = process.env['GRIDCKPT_FAILPOINT_DIR'];
  if (!dir) throw new Error(`failpoint ${name}=${action} needs GRIDCKPT_FAILPOINT_DIR`);
  if (action === 'hold' && !existsSync(join(dir, `${name}.on`))) return;
  const release = join(dir, `${name}.release`);
  await new Promise<void>((resolve) => {
    const watcher = watch(dir, () => {
      if (existsSync(release)) {
        watcher.close();
        resolve();
      }
    });
    writeFileSync(join(dir, `${name}.hit`), String(process.pid));
    if (existsSync(release)) {
      watcher.close();
      resolve();
    }
  });
}
