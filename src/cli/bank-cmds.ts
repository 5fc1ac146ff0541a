import type { Command } from 'commander';
import { clientSecurity } from './tls-flags.js';
import { AgentClient } from '../wire/agent-client.js';
import { checkHostPort } from '../node/config.js';
import { checkName } from '../common/names.js';
import { bankJobSpec, readBankFromAgent } from '../bank/job.js';
import { expectedTotal, referenceBalances, totalOf, validateParams, type BankParams } from '../bank/model.js';
import { balancesDigest } from '../bank/digest.js';
import { printJson, line, parseIntFlag, UsageError } from './output.js';

// `gridckpt bank …`: the sample job.

interface BankFlags {
  accounts: string;
  units: string;
  ops: string;
  seed: string;
}

export function bankParams(o: BankFlags): BankParams {
  try {
    return validateParams({
      accounts: parseIntFlag('accounts', o.accounts, 2, 16_777_216),
      units: parseIntFlag('units', o.units, 1, 512),
      opsPerUnit: parseIntFlag('ops', o.ops, 0, 1_000_000_000),
      seed: parseIntFlag('seed', o.seed, 0, 0xffffff),
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function withBankFlags(cmd: Command): Command {
  return cmd
    .option('--accounts <n>', 'accounts', '1024')
    .option('--units <n>', 'unit processes', '4')
    .option('--ops <n>', 'transfers per unit', '2000')
    .option('--seed <n>', 'seed of the transfers', '1');
}

export function addBankCommands(program: Command): void {
  const bank = program.command('bank').description('the bank sample job');
  const agentOpt = ['--agent <host:port>', 'node agent address', process.env['GRIDCKPT_AGENT'] ?? '127.0.0.1:7070'] as const;

  withBankFlags(bank.command('start').description('start a bank job on an agent'))
    .option(...agentOpt).option('--job <id>', 'job id', 'bank')
    .option('--interval-ms <ms>', 'checkpoint period (0: none)', '200').option('--json', 'print JSON')
    .action(async (o: BankFlags & { agent: string; job: string; intervalMs: string; json?: boolean }) => {
      const p = bankParams(o);
      const spec = bankJobSpec(checkName('job id', o.job), p, parseIntFlag('interval', o.intervalMs, 0, 86_400_000));
      const c = new AgentClient(checkHostPort('agent address', o.agent), undefined, {}, clientSecurity());
      try {
        const r = await c.startJob({ job: spec, leaseBound: false, fresh: false });
        if (o.json) printJson(r.job);
        else line(`bank job ${o.job} started: ${p.units} units × ${p.opsPerUnit} transfers over ${p.accounts} accounts`);
      } finally {
        c.close();
      }
    });

  withBankFlags(bank.command('expect').description('the failure-free result, computed without any agent'))
    .option('--json', 'print JSON')
    .action((o: BankFlags & { json?: boolean }) => {
      const p = bankParams(o);
      const balances = referenceBalances(p);
      const out = { digest: balancesDigest(balances), total: totalOf(balances), expectedTotal: expectedTotal(p) };
      if (o.json) printJson(out);
      else line(`digest ${out.digest} total ${out.total}`);
    });

  withBankFlags(bank.command('check').description('compare a finished bank job on an agent with the reference'))
    .option(...agentOpt).option('--job <id>', 'job id', 'bank').option('--json', 'print JSON')
    .action(async (o: BankFlags & { agent: string; job: string; json?: boolean }) => {
      const p = bankParams(o);
      const c = new AgentClient(checkHostPort('agent address', o.agent), undefined, {}, clientSecurity());
      try {
        const { balances, counters } = await readBankFromAgent(c, checkName('job id', o.job), p);
        const expected = balancesDigest(referenceBalances(p));
        const digest = balancesDigest(balances);
        const out = { digest, expectedDigest: expected, match: digest === expected, total: totalOf(balances), expectedTotal: expectedTotal(p), counters };
        if (o.json) printJson(out);
        else line(`${out.match ? 'MATCH' : 'MISMATCH'}: digest ${digest}, expected ${expected}; total ${out.total} (expected ${out.expectedTotal})`);
        if (!out.match) process.exitCode = 1;
      } finally {
        c.close();
      }
    });
}
