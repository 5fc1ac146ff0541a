import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { run } from './cli-run.js';
import { createServer, type Server } from 'node:net';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { uniqueNodeId } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';

// Issue 8: a service that cannot start printed a stack trace; a read-only
// store was accepted. Each now exits 1 with one line that names the value
// at fault, and no stack.

/** stderr without the agent's JSON log lines: what the operator reads. */
function said(err: string): string[] {
  return err.split('\n').filter((l) => l !== '' && !l.startsWith('{'));
}

function expectOneLine(r: { code: number | null; err: string }, message: RegExp): void {
  expect(r.code).toBe(1);
  const lines = said(r.err);
  expect(lines, r.err).toHaveLength(1);
  expect(lines[0]).toMatch(message);
  expect(r.err).not.toMatch(/\n\s+at /);
}

async function listenAny(): Promise<{ server: Server; address: string }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  return { server, address: `127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}` };
}

/** A directory no write reaches, even root's: a read-only tmpfs when root may mount, else mode 0555. */
async function readOnlyDir(dir: string): Promise<{ path: string; undo: () => Promise<void> }> {
  const path = join(dir, 'ro');
  await mkdir(path);
  if (process.getuid?.() === 0) {
    const mounted = await new Promise<boolean>((resolve) => {
      spawn('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', path], { stdio: 'ignore' }).once('exit', (c) => resolve(c === 0));
    });
    if (mounted) return { path, undo: () => new Promise((resolve) => void spawn('umount', [path], { stdio: 'ignore' }).once('exit', () => resolve())) };
  }
  await chmod(path, 0o555);
  return { path, undo: () => chmod(path, 0o755) };
}

describe('startup errors are one line naming the value', () => {
  it('a data dir under a file (ENOTDIR), for the agent, the cluster and the grid', async () => {
    await withTmp('ops-enotdir', async (dir) => {
      const file = join(dir, 'afile');
      await writeFile(file, '');
      const under = join(file, 'x');
      expectOneLine(await run(['agent', '--data-dir', under, '--node-id', uniqueNodeId('nd'), '--metrics-listen', 'none']), new RegExp(`^gridckpt: cannot use data dir ${under}: .*ENOTDIR`));
      expectOneLine(await run(['cluster', '--data-dir', under, '--store-dir', join(dir, 's'), '--metrics-listen', 'none']), new RegExp(`^gridckpt: cannot use data dir ${under}.*ENOTDIR`));
      expectOneLine(await run(['grid', '--data-dir', under, '--metrics-listen', 'none']), new RegExp(`^gridckpt: cannot use data dir ${under}.*ENOTDIR`));
    });
  }, 60_000);

  it('a port in use (EADDRINUSE) names the address, for gRPC and /metrics', async () => {
    await withTmp('ops-inuse', async (dir) => {
      const { server, address } = await listenAny();
      try {
        expectOneLine(await run(['agent', '--data-dir', join(dir, 'a'), '--node-id', uniqueNodeId('pu'), '--listen', address, '--metrics-listen', 'none']),
          new RegExp(`^gridckpt: cannot listen on ${address} \\(gRPC\\): the address is already in use \\(EADDRINUSE\\)`));
        expectOneLine(await run(['agent', '--data-dir', join(dir, 'b'), '--node-id', uniqueNodeId('pu'), '--metrics-listen', address]),
          new RegExp(`^gridckpt: cannot listen on ${address} \\(metrics\\): the address is already in use`));
        expectOneLine(await run(['cluster', '--data-dir', join(dir, 'c'), '--store-dir', join(dir, 's'), '--listen', address, '--metrics-listen', 'none']),
          new RegExp(`^gridckpt: cannot listen on ${address} \\(gRPC\\)`));
        expectOneLine(await run(['grid', '--data-dir', join(dir, 'g'), '--listen', address, '--metrics-listen', 'none']),
          new RegExp(`^gridckpt: cannot listen on ${address} \\(gRPC\\)`));
      } finally {
        server.close();
      }
    });
  }, 60_000);

  it('a read-only store dir is refused at start, naming it', async () => {
    await withTmp('ops-rostore', async (dir) => {
      const ro = await readOnlyDir(dir);
      try {
        expectOneLine(await run(['agent', '--data-dir', join(dir, 'a'), '--node-id', uniqueNodeId('ro'), '--store-dir', ro.path, '--metrics-listen', 'none']),
          new RegExp(`^gridckpt: store dir ${ro.path} is not writable: `));
        expectOneLine(await run(['cluster', '--data-dir', join(dir, 'c'), '--store-dir', ro.path, '--metrics-listen', 'none']),
          new RegExp(`^gridckpt: store dir ${ro.path} is not writable: `));
      } finally {
        await ro.undo();
      }
    });
  }, 60_000);

  it('an explicit freezer this host lacks names the flag', async () => {
    const v2 = (await import('node:fs/promises')).stat('/sys/fs/cgroup/cgroup.controllers').then(() => true, () => false);
    // The kind this host does not have: cgroup-v2 on a v1 (or hybrid) host, cgroup-v1 on a pure v2 host.
    const missing = (await v2) ? 'cgroup-v1' : 'cgroup-v2';
    await withTmp('ops-freezer', async (dir) => {
      const r = await run(['agent', '--data-dir', join(dir, 'a'), '--node-id', uniqueNodeId('fz'), '--freezer', missing, '--metrics-listen', 'none']);
      expectOneLine(r, new RegExp(`^gridckpt: bad --freezer ${missing}: freezer ${missing} is not available`));
    });
  }, 60_000);
});
