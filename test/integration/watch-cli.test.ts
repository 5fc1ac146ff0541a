import { describe, expect, it, onTestFinished } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CLI_SCRIPT } from '../../src/node/agent-process.js';

// `gridckpt watch` as an operator runs it, next to `gridckpt up --demo`: one
// watcher per cluster (text) and one on the grid (--json). The victim
// cluster's watcher prints a committed round, then the recovery from the
// agent the drill killed (started, naming it, then done); each watcher (with
// --once) exits 0 when `up` stops its service. --replay makes the watchers' start time
// irrelevant: nothing is waited for by time.

interface Proc {
  child: ChildProcess;
  lines: string[];
  errors: string[];
  exited: Promise<number | null>;
}

/** detached: its own process group, so that everything it started can be stopped with it. */
function run(args: string[], onLine?: (l: string) => void, detached = false): Proc {
  const child = spawn(process.execPath, [CLI_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached });
  const lines: string[] = [];
  const errors: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => errors.push(l));
  const out = createInterface({ input: child.stdout! });
  out.on('line', (l) => {
    lines.push(l);
    onLine?.(l);
  });
  const closed = new Promise<void>((r) => out.once('close', () => r()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))).then(async (code) => {
    await closed;
    return code;
  });
  return { child, lines, errors, exited };
}

describe('gridckpt watch', () => {
  it('during up --demo: a committed round, then the recovery from the killed agent, in order; exits 0 when the service stops', async () => {
    let where: (addresses: Map<string, string>) => void = () => undefined;
    const printed = new Promise<Map<string, string>>((r) => { where = r; });
    const addresses = new Map<string, string>();
    const operatorFlags: string[] = [];
    // 250 ms heartbeats: this test is about what is watched, not detection speed, and a busy machine
    // must not make the detector declare live nodes failed.
    const up = run(['up', '--demo', '--ops', '3000', '--heartbeat-interval-ms', '250'], (l) => {
      const grid = /^grid coordinator\s+(\S+)/.exec(l);
      const cluster = /^\s+(cluster-\d+)\s+(\S+)/.exec(l);
      if (grid) addresses.set('grid', grid[1]!);
      if (cluster) addresses.set(cluster[1]!, cluster[2]!);
      // up runs with mTLS: the watchers use the operator certificate it made.
      const tls = /^mutual TLS on every link; operator certificate: (.*)$/.exec(l);
      if (tls) operatorFlags.push(...tls[1]!.split(' '));
      if (l.startsWith('data under')) where(addresses);
    }, true);
    const watchers = new Map<string, Proc>();
    // Even if the test times out: up --demo has no Ctrl-C handler, so its whole process group is
    // stopped (every service stops cleanly on SIGTERM, removing its cgroups).
    onTestFinished(async () => {
      if (up.child.exitCode === null && up.child.signalCode === null) {
        try { process.kill(-up.child.pid!, 'SIGTERM'); } catch { /* gone */ }
      }
      for (const w of watchers.values()) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGINT');
      await Promise.all([up, ...watchers.values()].map((p) => p.exited));
    });
    const early = up.exited.then((code): never => { throw new Error(`up exited ${code} before it printed its services`); });
    early.catch(() => undefined);
    const at = await Promise.race([printed, early]);
    for (const [name, address] of at) {
      // --once: the watcher ends with the stream (without it, it would wait for the service to come back).
      watchers.set(name, run([...(name === 'grid' ? ['watch', '--grid', address, '--replay', '1000', '--json', '--once'] : ['watch', '--cluster', address, '--job', 'bank', '--replay', '1000', '--once']), ...operatorFlags]));
    }
    expect(await up.exited, [...up.lines, ...up.errors.slice(-20)].join('\n')).toBe(0);
    for (const [name, w] of watchers) expect(await w.exited, `watcher of ${name}: ${w.lines.slice(-3).join('\n')}`).toBe(0);

    const kill = up.lines.map((l) => /^kill -9 of node agent (\S+) in (cluster-\d+)/.exec(l)).find((m) => m !== null);
    expect(kill, up.lines.join('\n')).toBeTruthy();
    const [, node, victimCluster] = kill!;
    const lines = watchers.get(victimCluster!)!.lines;
    const committed = lines.findIndex((l) => /^\d\d:\d\d:\d\d\.\d{3} #\d+ round +bank \d+ ·→committed: epoch \d+ committed/.test(l));
    const started = lines.findIndex((l) => l.includes(` recovery bank ${node} ·→started: node ${node} declared failed`));
    const done = lines.findIndex((l, i) => i > started && /#\d+ recovery bank \d+ started→done: job bank recovered in \d+ ms/.test(l));
    expect(committed, lines.join('\n')).toBeGreaterThanOrEqual(0);
    expect(started, lines.join('\n')).toBeGreaterThan(committed);
    expect(done, lines.join('\n')).toBeGreaterThan(started);
    // --job bank: every line is the job's.
    expect(lines.every((l) => / (job|round|recovery) +bank /.test(l)), lines.join('\n')).toBe(true);

    // --json: one object a line, the grid's own committed rounds among them, the job completed last.
    const grid = watchers.get('grid')!.lines.map((l) => JSON.parse(l) as Record<string, string>);
    expect(grid.some((e) => e['kind'] === 'round' && e['to'] === 'committed' && e['jobId'] === 'bank')).toBe(true);
    expect(grid.filter((e) => e['kind'] === 'job').at(-1)).toMatchObject({ jobId: 'bank', from: 'running', to: 'completed' });
    const seqs = grid.map((e) => BigInt(e['seq']!));
    expect(seqs).toEqual(seqs.map((_, i) => 1n + BigInt(i)));
  }, 300_000); // the whole demo, on a busy machine

  it('names a bad or unreachable address', () => {
    const bad = spawnSync(process.execPath, [CLI_SCRIPT, 'watch', '--grid', 'nohost'], { encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/bad grid address "nohost"/);
    const two = spawnSync(process.execPath, [CLI_SCRIPT, 'watch', '--grid', '127.0.0.1:1', '--cluster', '127.0.0.1:2'], { encoding: 'utf8', timeout: 60_000 });
    expect(two.status).toBe(2);
    expect(two.stderr).toMatch(/exactly one of --grid, --cluster or --agent \(got --grid, --cluster\)/);
    const down = spawnSync(process.execPath, [CLI_SCRIPT, 'watch', '--cluster', '127.0.0.1:1', '--insecure'], { encoding: 'utf8', timeout: 60_000 });
    expect(down.status).toBe(1);
    expect(down.stderr).toMatch(/UNAVAILABLE: cannot watch the cluster coordinator at 127\.0\.0\.1:1/);
  });
});
