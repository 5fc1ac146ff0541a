import { describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CLI_SCRIPT } from '../../src/node/agent-process.js';

// `gridckpt watch` as an operator runs it, next to `gridckpt up --demo`: one
// watcher per cluster (text) and one on the grid (--json). The victim
// cluster's watcher prints a committed round, then the recovery from the
// agent the drill killed (started, naming it, then done); each watcher exits
// 0 when `up` stops its service. --replay makes the watchers' start time
// irrelevant: nothing is waited for by time.

interface Proc {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
}

function run(args: string[], onLine?: (l: string) => void): Proc {
  const child = spawn(process.execPath, [CLI_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
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
  return { child, lines, exited };
}

describe('gridckpt watch', () => {
  it('during up --demo: a committed round, then the recovery from the killed agent, in order; exits 0 when the service stops', async () => {
    let where: (addresses: Map<string, string>) => void = () => undefined;
    const printed = new Promise<Map<string, string>>((r) => { where = r; });
    const addresses = new Map<string, string>();
    const up = run(['up', '--demo', '--ops', '3000'], (l) => {
      const grid = /^grid coordinator\s+(\S+)/.exec(l);
      const cluster = /^\s+(cluster-\d+)\s+(\S+)/.exec(l);
      if (grid) addresses.set('grid', grid[1]!);
      if (cluster) addresses.set(cluster[1]!, cluster[2]!);
      if (l.startsWith('data under')) where(addresses);
    });
    const watchers = new Map<string, Proc>();
    try {
      const at = await Promise.race([printed, up.exited.then((code) => { throw new Error(`up exited ${code} before it printed its services`); })]);
      for (const [name, address] of at) {
        watchers.set(name, run(name === 'grid' ? ['watch', '--grid', address, '--replay', '1000', '--json'] : ['watch', '--cluster', address, '--job', 'bank', '--replay', '1000']));
      }
      expect(await up.exited, up.lines.join('\n')).toBe(0);
      for (const [name, w] of watchers) expect(await w.exited, `watcher of ${name}: ${w.lines.slice(-3).join('\n')}`).toBe(0);

      const kill = up.lines.map((l) => /^kill -9 of node agent (\S+) in (cluster-\d+)/.exec(l)).find((m) => m !== null);
      expect(kill, up.lines.join('\n')).toBeTruthy();
      const [, node, victimCluster] = kill!;
      const lines = watchers.get(victimCluster!)!.lines;
      const committed = lines.findIndex((l) => /^\d\d:\d\d:\d\d\.\d{3} #\d+ round +bank \d+ ·→committed: epoch \d+ committed/.test(l));
      const started = lines.findIndex((l) => l.includes(` recovery bank ${node} ·→started: node ${node} declared failed`));
      const done = lines.findIndex((l) => /#\d+ recovery bank \d+ started→done: job bank recovered in \d+ ms/.test(l));
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
    } finally {
      for (const p of [up, ...watchers.values()]) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGINT');
      await Promise.all([up, ...watchers.values()].map((p) => p.exited));
    }
  });

  it('names a bad or unreachable address', () => {
    const bad = spawnSync(process.execPath, [CLI_SCRIPT, 'watch', '--grid', 'nohost'], { encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/bad grid address "nohost"/);
    const two = spawnSync(process.execPath, [CLI_SCRIPT, 'watch', '--grid', '127.0.0.1:1', '--cluster', '127.0.0.1:2'], { encoding: 'utf8', timeout: 60_000 });
    expect(two.status).toBe(2);
    expect(two.stderr).toMatch(/exactly one of --grid, --cluster or --agent \(got --grid, --cluster\)/);
    const down = spawnSync(process.execPath, [CLI_SCRIPT, 'watch', '--cluster', '127.0.0.1:1'], { encoding: 'utf8', timeout: 60_000 });
    expect(down.status).toBe(1);
    expect(down.stderr).toMatch(/UNAVAILABLE: cannot watch the cluster coordinator at 127\.0\.0\.1:1/);
  });
});
