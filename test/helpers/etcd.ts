import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

// A real etcd for the grid HA tests (docs/grid-ha.md): Debian's etcd-server,
// on ephemeral loopback ports, its data in the test's temp dir. No etcd is no
// skip: the test fails saying what to install (.ci/run installs it).

export interface EtcdProcess {
  child: ChildProcess;
  /** The client URL (http://127.0.0.1:PORT). */
  url: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function etcdBinary(): string {
  const r = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' });
  const path = r.stdout.trim();
  if (r.status !== 0 || path === '') {
    throw new Error('etcd is not installed: the grid HA tests need a real etcd. Install it with `apt-get install -y etcd-server` (.ci/run does when etcd is not on PATH)');
  }
  return path;
}

/** Starts etcd and resolves once it says it serves clients. */
export async function startEtcd(dir: string): Promise<EtcdProcess> {
  const bin = etcdBinary();
  const [client, peer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${client}`;
  const child = spawn(bin, [
    '--name', 'test', '--data-dir', join(dir, 'etcd'),
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `test=http://127.0.0.1:${peer}`, '--logger', 'zap',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    const onData = (b: Buffer): void => {
      seen = (seen + b.toString()).slice(-8192);
      // 3.4 says "serving client traffic insecurely", later ones "ready to serve client requests".
      if (/serving client traffic|ready to serve client requests/.test(seen)) {
        child.stderr!.off('data', onData);
        child.stderr!.resume();
        resolve();
      }
    };
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`etcd exited (${code}) before serving: ${seen}`)));
  });
  return {
    child, url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
