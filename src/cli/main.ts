#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { GridError } from '../common/errors.js';
import { AgentCallError } from '../wire/agent-client.js';
import { addAgentCommand } from './agent-cmd.js';
import { addClientCommands } from './client-cmds.js';
import { addBankCommands } from './bank-cmds.js';
import { addDemoCommand } from './demo.js';
import { addClusterCommands } from './cluster-cmd.js';
import { addGridCommands } from './grid-cmd.js';
import { addUpCommand } from './up-cmd.js';
import { addWatchCommand } from './watch-cmd.js';
import { addGcCommand } from './gc-cmd.js';
import { addCheckCommand } from './check-cmd.js';
import { UsageError } from './output.js';
import { addSecurityOptions, muteIpServerNameWarning, unavailableHint } from './tls-flags.js';
import { addCertsCommand } from './certs-cmd.js';
import { addJobCommand } from './job-cmd.js';
import { StartupError } from '../common/startup-error.js';

// gridckpt: one binary for every service and every operator command.

muteIpServerNameWarning();
// `gridckpt epochs … | head`: once the reader is gone, what is left to print has nowhere to go, and that is
// no failure: stop quietly (exit 0), as a shell tool killed by SIGPIPE would, instead of an EPIPE stack.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

const program = new Command();
program.name('gridckpt').description('hierarchical checkpoint orchestrator').exitOverride();
addSecurityOptions(program);
addCertsCommand(program);
addAgentCommand(program);
addClientCommands(program);
addBankCommands(program);
addDemoCommand(program);
addClusterCommands(program);
addGridCommands(program);
addUpCommand(program);
addWatchCommand(program);
addGcCommand(program);
addCheckCommand(program);
addJobCommand(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  if (err instanceof UsageError || (err instanceof GridError && err.kind === 'invalid-argument')) {
    process.stderr.write(`gridckpt: ${err.message}\n`);
    process.exit(2);
  }
  // A service that cannot start says why in one line (the value at fault is in it); a bug keeps its stack.
  if (err instanceof AgentCallError || err instanceof StartupError) {
    process.stderr.write(`gridckpt: ${err.message}${err instanceof AgentCallError ? unavailableHint(err.code) : ''}\n`);
    process.exit(1);
  }
  process.stderr.write(`gridckpt: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
