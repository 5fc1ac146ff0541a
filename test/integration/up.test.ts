import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CLI_SCRIPT } from '../../src/node/agent-process.js';
import { GridClient } from '../../src/wire/grid-client.js';
import { loadTlsFiles } from '../../src/common/transport-security.js';

// `gridckpt up`, the main job: a whole local grid as separate processes.

describe('gridckpt up', () => {
  it('--demo --json: kill -9 of a node agent mid-run, recovery, the failure-free digest, exit 0', () => {
    const r = spawnSync(process.execPath, [CLI_SCRIPT, 'up', '--demo', '--json', '--ops', '3000'], { encoding: 'utf8', timeout: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(report['digest']).toBe(report['expectedDigest']);
    expect(report['invariantHeld']).toBe(true);
    expect(report['failuresInjected']).toBe(1);
    expect(report['recoveries']).toBe(1);
    expect(report['epochsCommitted'] as number).toBeGreaterThanOrEqual(2);
    expect(report['detectionMs'] as number).toBeLessThan(2_000);
    expect(report['recoveryMs'] as number).toBeGreaterThan(0);
    // Every link, and the drill's own calls, ran over mutual TLS (docs/security.md).
    expect(report['tls']).toBe(true);
  });

  it('--demo --fail cluster: kill -9 of a cluster coordinator, the grid moves its units, the failure-free digest', () => {
    const r = spawnSync(process.execPath, [CLI_SCRIPT, 'up', '--demo', '--fail', 'cluster', '--json', '--ops', '3000'], { encoding: 'utf8', timeout: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(report['failure']).toBe('cluster');
    expect(report['killed']).toBe('cluster-1');
    expect(report['digest']).toBe(report['expectedDigest']);
    expect(report['invariantHeld']).toBe(true);
    expect(report['recoveries']).toBe(1);
    expect(report['detectionMs'] as number).toBeLessThan(2_000);
  });

  it('--fail names what it cannot kill', () => {
    const r = spawnSync(process.execPath, [CLI_SCRIPT, 'up', '--demo', '--fail', 'disk'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/bad --fail "disk": expected node, cluster or grid/);
  });

  it('--fail grid without --etcd is refused, naming --etcd (no standby to take over)', () => {
    const r = spawnSync(process.execPath, [CLI_SCRIPT, 'up', '--demo', '--fail', 'grid'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--fail grid needs --etcd URL/);
  });

  it('serves until SIGINT, then stops every service cleanly', async () => {
    const child = spawn(process.execPath, [CLI_SCRIPT, 'up', '--clusters', '1', '--nodes', '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const lines = createInterface({ input: child.stdout! });
    const pids: number[] = [];
    let gridAddress = '';
    let operatorCert: { cert: string; key: string; ca: string } | null = null;
    for await (const text of lines) {
      const m = /^grid coordinator\s+(\S+)/.exec(text);
      if (m) gridAddress = m[1]!;
      const tls = /operator certificate: --tls-cert (\S+) --tls-key (\S+) --tls-ca (\S+)$/.exec(text);
      if (tls) operatorCert = { cert: tls[1]!, key: tls[2]!, ca: tls[3]! };
      if (text.startsWith('submit work with')) break;
    }
    expect(gridAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(operatorCert).not.toBeNull();
    const grid = new GridClient(gridAddress, 30_000, {}, await loadTlsFiles(operatorCert!));
    const status = await grid.status();
    grid.close();
    expect(status.gridId).toBe('grid-1');
    for (const p of spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)) pids.push(Number(p));
    expect(pids.length).toBe(4); // grid, cluster, two agents
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });
});
