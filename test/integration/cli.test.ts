import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { CLI_SCRIPT } from '../../src/node/agent-process.js';
import { startAgent, uniqueNodeId } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';

// The CLI as an operator uses it: bad values are named, read commands have
// --json, and the agent serves Prometheus metrics.

/** Plaintext: the agents here are --insecure (test/helpers/services.ts); test/integration/tls.test.ts covers certificates. */
function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI_SCRIPT, ...args, '--insecure'], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('gridckpt CLI', () => {
  it('names the bad value and exits 2', () => {
    const cases: Array<[string[], RegExp]> = [
      [['agent', '--data-dir', '/tmp/x', '--memory-budget', 'lots'], /bad memory budget "lots"/],
      [['agent', '--data-dir', '/tmp/x', '--freezer', 'ice'], /bad freezer "ice"/],
      [['agent', '--data-dir', '/tmp/x', '--node-id', 'a/b'], /bad node id "a\/b"/],
      [['status', '--agent', 'nohost'], /bad agent address "nohost"/],
      [['restore', '--job', 'bank', '--epoch', '-3'], /bad epoch "-3"/],
      [['bank', 'expect', '--units', 'four'], /bad units "four"/],
    ];
    for (const [args, message] of cases) {
      const r = cli(...args);
      expect(r.err, args.join(' ')).toMatch(message);
      expect(r.code, args.join(' ')).toBe(2);
    }
  });

  it('runs a bank job through the CLI and reports it as JSON; /metrics is served', async () => {
    await withTmp('cli', async (dir) => {
      const agent = await startAgent(dir, { nodeId: uniqueNodeId('cli') });
      const at = ['--agent', agent.proc.ready.grpc];
      const bank = ['--accounts', '1024', '--units', '2', '--ops', '300', '--seed', '9'];
      try {
        expect(cli('bank', 'start', ...at, ...bank, '--interval-ms', '0').code).toBe(0);
        const cp = cli('checkpoint', ...at, '--job', 'bank', '--json');
        expect(cp.code).toBe(0);
        expect(JSON.parse(cp.out).epoch.epoch).toBe('1');
        const wait = cli('wait', ...at, '--job', 'bank', '--json');
        expect(JSON.parse(wait.out).job.state).toBe('completed');
        const check = cli('bank', 'check', ...at, ...bank, '--json');
        expect(check.code).toBe(0);
        expect(JSON.parse(check.out).match).toBe(true);
        const epochs = JSON.parse(cli('epochs', ...at, '--job', 'bank', '--json').out);
        expect(epochs.map((e: { epoch: string }) => e.epoch)).toEqual(['1']);
        const verify = JSON.parse(cli('verify', ...at, '--job', 'bank', '--json').out);
        expect(verify.ok).toBe(true);
        const st = JSON.parse(cli('status', ...at, '--json').out);
        expect(st.freezer).toBe(agent.proc.ready.freezer);
        expect(st.jobs[0].units).toHaveLength(2);
        const missing = cli('restore', ...at, '--job', 'nojob');
        expect(missing.code).toBe(1);
        expect(missing.err).toMatch(/NOT_FOUND.*nojob/);

        const metrics = await (await fetch(agent.proc.ready.metrics!)).text();
        expect(metrics).toMatch(/gridckpt_node_checkpoints_total\{outcome="committed",stage=""\} 1/);
        expect(metrics).toMatch(/gridckpt_node_freeze_window_seconds_count 1/);
        expect(metrics).toMatch(new RegExp(`gridckpt_node_freezer_info\\{kind="${agent.proc.ready.freezer}"\\} 1`));
      } finally {
        await agent.stop();
      }
    });
  });
});
