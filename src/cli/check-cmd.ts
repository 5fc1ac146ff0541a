import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { createServer } from 'node:net';
import * as path from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_CGROUP_V1_ROOT, DEFAULT_CGROUP_V2_ROOT, detectFreezer, type FreezerKind } from '../node/units/freezer.js';
import { FREEZERS } from '../node/config.js';
import { fsyncPath, isErrno } from '../runtime/durable-fs.js';
import { realRuntime } from '../wire/real-clients.js';
import { UsageError, parseIntFlag } from './output.js';
import { describeIdentity, identityFromSan } from '../common/tls-identity.js';

// `gridckpt check` (like `criu check`): before an operator starts a service,
// is each thing it needs usable here? One verdict line per item — the
// freezer, the store and data directories (exist or can be made, take a
// write, an fsync and a rename, have room), the listen addresses (bindable)
// and, when given, the TLS files (readable PEM, the key matching the
// certificate). Exit 1 when any item fails; a warning (the SIGSTOP fallback
// freezer, a certificate near its end) does not fail.

export type Verdict = { item: string; status: 'ok' | 'warn' | 'fail'; detail: string };

export interface CheckOptions {
  freezer: 'auto' | FreezerKind;
  cgroupV1Root: string;
  cgroupV2Root: string;
  storeDir: string | null;
  dataDir: string | null;
  listen: string[];
  minFreeBytes: number;
  tlsCert: string | null;
  tlsKey: string | null;
  tlsCa: string | null;
}

export async function runChecks(o: CheckOptions): Promise<Verdict[]> {
  const out: Verdict[] = [await checkFreezer(o)];
  if (o.storeDir !== null) out.push(await checkDir('store', o.storeDir, o.minFreeBytes));
  if (o.dataDir !== null) out.push(await checkDir('data dir', o.dataDir, o.minFreeBytes));
  for (const address of o.listen) out.push(await checkListen(address));
  for (const [item, file] of [['tls cert', o.tlsCert], ['tls key', o.tlsKey], ['tls ca', o.tlsCa]] as const) {
    if (file !== null) out.push(await checkPem(item, file, o.tlsCert));
  }
  return out;
}

async function checkFreezer(o: CheckOptions): Promise<Verdict> {
  const scope = `check-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    const f = await detectFreezer(o.freezer, { scope, cgroupV1Root: o.cgroupV1Root, cgroupV2Root: o.cgroupV2Root, time: realRuntime() });
    // The probe made <root>/gridckpt/<scope>: an agent makes its own, so this one goes.
    const root = f.kind === 'cgroup-v1' ? o.cgroupV1Root : f.kind === 'cgroup-v2' ? o.cgroupV2Root : null;
    if (root !== null) await rmdir(path.join(root, 'gridckpt', scope)).catch(() => undefined);
    if (f.kind === 'signal') {
      return { item: 'freezer', status: 'warn', detail: `the agent would use the SIGSTOP/SIGCONT fallback (a unit can escape it by changing its process group)${f.detail ? `: ${f.detail}` : ''}` };
    }
    return { item: 'freezer', status: 'ok', detail: `the agent would use ${f.kind} (${f.detail})` };
  } catch (err) {
    return { item: 'freezer', status: 'fail', detail: (err as Error).message };
  }
}

/** Exists or can be made; takes a write, an fsync of it and of the directory, a rename; has minFreeBytes free. */
async function checkDir(item: string, dir: string, minFreeBytes: number): Promise<Verdict> {
  const abs = path.resolve(dir);
  const fail = (what: string): Verdict => ({ item, status: 'fail', detail: `${abs}: ${what}` });
  let made: string | undefined;
  try {
    try {
      const st = await stat(abs);
      if (!st.isDirectory()) return fail('exists and is not a directory');
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) return fail(`cannot be read: ${(err as Error).message}`);
      try {
        made = await mkdir(abs, { recursive: true });
      } catch (e) {
        return fail(`does not exist and cannot be created: ${(e as Error).message}`);
      }
    }
    const probe = path.join(abs, `.gridckpt-check-${process.pid}-${randomBytes(3).toString('hex')}`);
    try {
      const fh = await open(probe, 'wx', 0o600);
      try {
        await fh.write(randomBytes(4096));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(probe, `${probe}.renamed`);
      await fsyncPath(abs);
      await rm(`${probe}.renamed`);
    } catch (err) {
      await rm(probe, { force: true }).catch(() => undefined);
      return fail(`not writable (write, fsync, rename): ${(err as Error).message}`);
    }
    const fs = await statfs(abs);
    const free = fs.bavail * fs.bsize;
    if (free < minFreeBytes) return fail(`${mib(free)} free, less than the ${mib(minFreeBytes)} asked (--min-free)`);
    return { item, status: 'ok', detail: `${abs}: writable, fsync and rename work, ${mib(free)} free of ${mib(fs.blocks * fs.bsize)}${made ? ' (created)' : ''}` };
  } finally {
    if (made) await rm(made, { recursive: true, force: true }).catch(() => undefined);
  }
}

async function checkListen(address: string): Promise<Verdict> {
  const item = `listen ${address}`;
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(at + 1));
  if (at <= 0 || !Number.isInteger(port) || port < 0 || port > 65_535) return { item, status: 'fail', detail: `not a host:port` };
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err) => resolve({ item, status: 'fail', detail: `cannot bind: ${err.message}` }));
    server.listen(port, host, () => {
      const bound = server.address();
      server.close(() => resolve({ item, status: 'ok', detail: `bindable${port === 0 && bound && typeof bound === 'object' ? ` (any free port, e.g. ${bound.port})` : ''}` }));
    });
  });
}

async function checkPem(item: 'tls cert' | 'tls key' | 'tls ca', file: string, certFile: string | null): Promise<Verdict> {
  const fail = (what: string): Verdict => ({ item, status: 'fail', detail: `${file}: ${what}` });
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return fail(`cannot be read: ${(err as Error).message}`);
  }
  if (!/-----BEGIN [A-Z0-9 ]+-----/.test(text)) return fail('is not PEM (no BEGIN line)');
  try {
    if (item === 'tls key') {
      const key = createPrivateKey(text);
      if (certFile !== null) {
        const cert = new X509Certificate(await readFile(certFile));
        if (!cert.checkPrivateKey(key)) return fail(`does not match the certificate ${certFile}`);
      }
      return { item, status: 'ok', detail: `${file}: ${key.asymmetricKeyType ?? 'a'} private key${certFile !== null ? ' matching the certificate' : ''}` };
    }
    const cert = new X509Certificate(text);
    const who = item === 'tls cert' ? identityFromSan(cert.subjectAltName) : null;
    if (item === 'tls cert' && who === null) return fail('has no gridckpt identity (a SAN URI spiffe://gridckpt/<role>/<id>); make certificates with gridckpt certs init');
    const ends = new Date(cert.validTo);
    const now = new Date();
    if (ends < now) return fail(`expired ${cert.validTo}`);
    const soon = ends.getTime() - now.getTime() < 14 * 24 * 3600 * 1000;
    const identity = who !== null ? `${describeIdentity(who)}, ` : '';
    return { item, status: soon ? 'warn' : 'ok', detail: `${file}: ${identity}${cert.subject.replace(/\n/g, ', ')}, valid until ${cert.validTo}${soon ? ' (in less than 14 days)' : ''}` };
  } catch (err) {
    return fail(`does not parse: ${(err as Error).message}`);
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function addCheckCommand(program: Command): void {
  program.command('check').description('tell whether this machine can run a service: freezer, store and data dirs, listen addresses, TLS files (exit 1 if any fails)')
    .option('--freezer <kind>', `one of ${FREEZERS.join(', ')}`, process.env['GRIDCKPT_FREEZER'] ?? 'auto')
    .option('--cgroup-v1-root <dir>', 'where the cgroup v1 freezer hierarchy is mounted', DEFAULT_CGROUP_V1_ROOT)
    .option('--cgroup-v2-root <dir>', 'where the cgroup v2 hierarchy is mounted', DEFAULT_CGROUP_V2_ROOT)
    .option('--store-dir <dir>', 'the checkpoint store')
    .option('--data-dir <dir>', 'the service\'s own directory')
    .option('--listen <host:port...>', 'addresses the service will listen on (gRPC, metrics)')
    .option('--min-free <mib>', 'least free space in the store and data dirs, MiB', '64')
    .option('--json', 'one JSON object per item')
    .action(async (_opts: unknown, cmd: Command) => {
      // With the global --tls-* flags (tls-flags.ts), which are not loaded for check: it judges them.
      const opts = cmd.optsWithGlobals<Record<string, string | string[] | boolean | undefined>>();
      const freezer = String(opts['freezer']);
      if (!(FREEZERS as readonly string[]).includes(freezer)) throw new UsageError(`bad freezer ${JSON.stringify(freezer)}: expected one of ${FREEZERS.join(', ')}`);
      const str = (k: string): string | null => (typeof opts[k] === 'string' ? opts[k] : null);
      const verdicts = await runChecks({
        freezer: freezer as CheckOptions['freezer'],
        cgroupV1Root: String(opts['cgroupV1Root']), cgroupV2Root: String(opts['cgroupV2Root']),
        storeDir: str('storeDir'), dataDir: str('dataDir'),
        listen: Array.isArray(opts['listen']) ? opts['listen'] : [],
        minFreeBytes: parseIntFlag('min-free', String(opts['minFree']), 0, 1 << 30) * 1024 * 1024,
        tlsCert: str('tlsCert'), tlsKey: str('tlsKey'), tlsCa: str('tlsCa'),
      });
      for (const v of verdicts) {
        process.stdout.write(opts['json'] ? `${JSON.stringify(v)}\n` : `${v.status === 'fail' ? 'FAIL' : v.status.padEnd(4)}  ${v.item.padEnd(10)}  ${v.detail}\n`);
      }
      const failed = verdicts.filter((v) => v.status === 'fail').length;
      if (!opts['json']) process.stdout.write(failed === 0 ? 'check: every item is usable\n' : `check: ${failed} of ${verdicts.length} items fail\n`);
      if (failed > 0) process.exitCode = 1;
    });
}
