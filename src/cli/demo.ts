import type { Command } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNodeDrill } from '../demo/node-drill.js';
import { printJson, line, parseIntFlag } from './output.js';
import { bankParams } from './bank-cmds.js';

// `gridckpt demo`: the single-node failure drill, end to end, with a report.

export function addDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run the bank job on a local node agent, kill -9 everything mid-run, restore, and check the result')
    .option('--accounts <n>', 'accounts', '4096')
    .option('--units <n>', 'unit processes', '4')
    .option('--ops <n>', 'transfers per unit', '3000')
    .option('--seed <n>', 'seed of the transfers', '1')
    .option('--interval-ms <ms>', 'checkpoint period', '200')
    .option('--kill-delay-ms <ms>', 'kill this long after the first committed epoch (default: random up to 1000)')
    .option('--freezer <kind>', 'auto, cgroup-v1, cgroup-v2 or signal')
    .option('--memory-budget <size>', 'agent page memory, e.g. 64KiB to force swapping')
    .option('--keep', 'keep the work directory')
    .option('--json', 'print the report as one JSON object')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const params = bankParams({ accounts: o['accounts'] as string, units: o['units'] as string, ops: o['ops'] as string, seed: o['seed'] as string });
      const intervalMs = parseIntFlag('interval', o['intervalMs'] as string, 10, 60_000);
      const killDelayMs = o['killDelayMs'] === undefined ? Math.floor(Math.random() * 1000) : parseIntFlag('kill delay', o['killDelayMs'] as string, 0, 600_000);
      const workDir = await mkdtemp(join(tmpdir(), 'gridckpt-demo-'));
      const json = o['json'] === true;
      try {
        const report = await runNodeDrill({
          workDir, params, intervalMs, killDelayMs,
          freezer: o['freezer'] as string | undefined,
          memoryBudget: o['memoryBudget'] as string | undefined,
          onEvent: json ? undefined : (t) => line(t),
        });
        if (json) printJson(report);
        else {
          line(`epochs committed: ${report.epochsCommitted}; every one sums to the invariant total: ${report.epochChecks.every((e) => e.ok)}`);
          line(`digest   ${report.digest}`);
          line(`expected ${report.expectedDigest}`);
          line(report.ok ? 'OK: same result as a failure-free run' : 'FAILED: result differs from a failure-free run');
        }
        if (!report.ok) process.exitCode = 1;
      } finally {
        if (o['keep']) line(`work directory kept: ${workDir}`);
        else await rm(workDir, { recursive: true, force: true });
      }
    });
}
