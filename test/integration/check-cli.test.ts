// `gridckpt check` (docs/store-lifecycle.md, "gridckpt check"): one verdict
// per item, exit 1 when any fails — on this machine as it is, with a
// read-only store (a read-only tmpfs this test mounts: chmod does not stop
// root), with no freezer hierarchy (the roots pointed elsewhere), a port in
// use, and TLS files good, not PEM, or not matching.

import { execFile, execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_SCRIPT } from '../../src/node/agent-process.js';
import { makeTestCa } from '../helpers/tls-fixture.js';
import { withTmp } from '../helpers/tmp.js';

const root = process.getuid?.() === 0;

function check(args: string[]): Promise<{ code: number; lines: string[] }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_SCRIPT, 'check', ...args], (err, stdout) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, lines: stdout.trim().split('\n') });
    });
  });
}

const line = (lines: string[], item: string): string => lines.find((l) => new RegExp(`^\\S+\\s+${item}\\s`).test(l)) ?? `(no ${item} line in ${lines.join(' | ')})`;

describe('gridckpt check', () => {
  it('on this machine: every item usable, one verdict line each, exit 0', async () => {
    await withTmp('check', async (dir) => {
      const r = await check(['--store-dir', join(dir, 'store'), '--data-dir', join(dir, 'data'), '--listen', '127.0.0.1:0']);
      expect(r.code, r.lines.join('\n')).toBe(0);
      expect(line(r.lines, 'freezer')).toMatch(/^(ok|warn)\s+freezer\s+the agent would use/);
      expect(line(r.lines, 'store')).toMatch(new RegExp(`^ok\\s+store\\s+${join(dir, 'store')}: writable, fsync and rename work, [0-9.]+ MiB free`));
      expect(line(r.lines, 'data dir')).toMatch(/^ok\s+data dir\s+.*writable/);
      expect(line(r.lines, 'listen 127.0.0.1:0')).toMatch(/^ok\s+listen 127.0.0.1:0\s+bindable/);
      expect(r.lines.at(-1)).toBe('check: every item is usable');
    });
  });

  it.skipIf(!root)('a read-only store fails, naming the directory', async () => {
    await withTmp('check-ro', async (dir) => {
      const store = join(dir, 'store');
      await mkdir(store);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', store]);
      try {
        execFileSync('mount', ['-o', 'remount,ro', store]);
        const r = await check(['--store-dir', store, '--data-dir', join(dir, 'data')]);
        expect(r.code).toBe(1);
        expect(line(r.lines, 'store')).toMatch(new RegExp(`^FAIL\\s+store\\s+${store}: not writable \\(write, fsync, rename\\): .*read-only file system`));
        expect(line(r.lines, 'data dir')).toMatch(/^ok\s+data dir/);
        expect(r.lines.at(-1)).toBe('check: 1 of 3 items fail');
      } finally {
        execFileSync('umount', ['-l', store]);
      }
    });
  });

  it('without a freezer hierarchy: says the agent would use the SIGSTOP fallback; an explicit cgroup freezer fails', async () => {
    await withTmp('check-nofreezer', async (dir) => {
      const none = ['--cgroup-v1-root', join(dir, 'no-v1'), '--cgroup-v2-root', join(dir, 'no-v2')];
      const auto = await check(none);
      expect(auto.code).toBe(0);
      expect(line(auto.lines, 'freezer')).toMatch(/^warn\s+freezer\s+the agent would use the SIGSTOP\/SIGCONT fallback .*cgroup-v1 unavailable: .*cgroup-v2 unavailable/);
      const v1 = await check([...none, '--freezer', 'cgroup-v1']);
      expect(v1.code).toBe(1);
      expect(line(v1.lines, 'freezer')).toMatch(/^FAIL\s+freezer\s+freezer cgroup-v1 is not available/);
    });
  });

  it('a port in use fails', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const r = await check(['--listen', `127.0.0.1:${port}`]);
      expect(r.code).toBe(1);
      expect(line(r.lines, `listen 127.0.0.1:${port}`)).toMatch(/^FAIL\s+listen .*cannot bind: .*EADDRINUSE/);
    } finally {
      server.close();
    }
  });

  it('TLS files: a gridckpt certificate with its key passes; not PEM, a key of another certificate, or a certificate without an identity, fail', async () => {
    const ca = await makeTestCa('check-a');
    const other = await makeTestCa('check-b');
    try {
      await withTmp('check-tls', async (dir) => {
        const a = await ca.flags({ role: 'agent', id: 'n1' });
        const b = await other.flags({ role: 'agent', id: 'n2' });
        const good = await check(a);
        expect(good.code, good.lines.join('\n')).toBe(0);
        // The test CA issues for one day: usable, with a warning.
        expect(line(good.lines, 'tls cert')).toMatch(/^warn\s+tls cert\s+.*agent "n1", CN=n1, .*valid until .*\(in less than 14 days\)/);
        expect(line(good.lines, 'tls key')).toMatch(/^ok\s+tls key\s+.*matching the certificate/);
        await writeFile(join(dir, 'junk.crt'), 'not a certificate\n');
        const bad = await check([a[0]!, a[1]!, '--tls-key', b[3]!, '--tls-ca', join(dir, 'junk.crt')]);
        expect(bad.code).toBe(1);
        expect(line(bad.lines, 'tls key')).toMatch(/^FAIL\s+tls key\s+.*does not match the certificate/);
        expect(line(bad.lines, 'tls ca')).toMatch(/^FAIL\s+tls ca\s+.*junk.crt: is not PEM/);
        // The CA's own certificate is valid PEM but names no gridckpt peer.
        const noIdentity = await check(['--tls-cert', a[5]!, '--tls-key', a[3]!, '--tls-ca', a[5]!]);
        expect(noIdentity.code).toBe(1);
        expect(line(noIdentity.lines, 'tls cert')).toMatch(/^FAIL\s+tls cert\s+.*has no gridckpt identity/);
      });
    } finally {
      await ca.remove();
      await other.remove();
    }
  });
});
