// detectFreezer picks the strongest freezer this machine offers and says
// which; a forced kind that cannot work is an error naming it and why; a
// root that is missing or is not a cgroup mount makes 'auto' fall back and
// is never written to.

import { access, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { detectFreezer, type Freezer } from '../../../src/node/units/freezer.js';
import { HAVE_V1, HAVE_V2, V1_ROOT, V2_ROOT, uniqueScope } from './helpers.js';
import { realRuntime } from '../../../src/wire/real-clients.js';

const time = realRuntime();
const opened: Freezer[] = [];
async function detect(...args: Parameters<typeof detectFreezer>): Promise<Freezer> {
  const freezer = await detectFreezer(...args);
  opened.push(freezer);
  return freezer;
}

afterAll(async () => {
  for (const f of opened) await f.cleanupScope(); // removes the scope directories probing created
});

describe('detectFreezer', () => {
  it.skipIf(!HAVE_V1)('auto picks the cgroup v1 freezer on this machine', async () => {
    const scope = uniqueScope('auto');
    const freezer = await detect('auto', { time, scope });
    expect(freezer.kind).toBe('cgroup-v1');
    expect(freezer.detail).toContain(join(V1_ROOT, 'gridckpt', scope));
    await access(join(V1_ROOT, 'gridckpt', scope, 'freezer.state'));
  });

  it('signal works when forced, and says how it freezes', async () => {
    const freezer = await detect('signal', { time, scope: uniqueScope('sig') });
    expect(freezer.kind).toBe('signal');
    expect(freezer.detail).toBe("SIGSTOP/SIGCONT to the unit's process group");
  });

  it('auto falls back past a cgroup v1 root that does not exist, saying why', async () => {
    const missing = join(tmpdir(), `gridckpt-no-such-root-${process.pid}`);
    const freezer = await detect('auto', { time, scope: uniqueScope('fb'), cgroupV1Root: missing, cgroupV2Root: V2_ROOT });
    expect(freezer.kind).toBe(HAVE_V2 ? 'cgroup-v2' : 'signal');
    await expect(access(missing)).rejects.toThrow(/ENOENT/); // not created by the probe
  });

  it('auto ends at signals when neither root is a cgroup mount, and says why each was skipped', async () => {
    const plain = await mkdtemp(join(tmpdir(), 'gridckpt-plain-'));
    try {
      const freezer = await detect('auto', { time, scope: uniqueScope('fb'), cgroupV1Root: join(plain, 'nope'), cgroupV2Root: plain });
      expect(freezer.kind).toBe('signal');
      expect(freezer.detail).toMatch(/cgroup-v1 unavailable: .*nope does not exist/);
      expect(freezer.detail).toMatch(/cgroup-v2 unavailable: .* is not a cgroup v2 mount/);
      expect(await readdir(plain)).toEqual([]); // nothing was created in an ordinary directory
    } finally {
      await rm(plain, { recursive: true, force: true });
    }
  });

  it('a forced kind that is unavailable is an error naming it and why', async () => {
    const missing = join(tmpdir(), `gridckpt-no-such-root-${process.pid}`);
    await expect(detectFreezer('cgroup-v1', { time, scope: uniqueScope('x'), cgroupV1Root: missing })).rejects.toThrow(
      /freezer cgroup-v1 is not available: .*does not exist/,
    );
    // The default v2 root here is the tmpfs of a hybrid layout, not a v2 mount.
    await expect(detectFreezer('cgroup-v2', { time, scope: uniqueScope('x'), cgroupV2Root: tmpdir() })).rejects.toThrow(
      /freezer cgroup-v2 is not available: .*not a cgroup v2 mount/,
    );
  });

  it.skipIf(!HAVE_V1)('a cgroup v1 mount without the freezer controller is refused and left as it was', async () => {
    // Any other v1 hierarchy on this machine will do, e.g. the pids controller.
    const other = '/sys/fs/cgroup/pids';
    const before = await readdir(other).catch(() => null);
    if (before === null) return;
    const scope = uniqueScope('nofreeze');
    await expect(detectFreezer('cgroup-v1', { time, scope, cgroupV1Root: other })).rejects.toThrow(/no writable freezer.state/);
    await expect(access(join(other, 'gridckpt', scope))).rejects.toThrow(/ENOENT/);
  });

  it.skipIf(!HAVE_V2)('cgroup-v2 works when forced at a v2 mount', async () => {
    const freezer = await detect('cgroup-v2', { time, scope: uniqueScope('v2'), cgroupV2Root: V2_ROOT });
    expect(freezer.kind).toBe('cgroup-v2');
  });

  it('rejects a scope that would escape its directory', async () => {
    await expect(detectFreezer('signal', { time, scope: '../etc' })).rejects.toThrow(/bad freezer scope/);
  });
});
