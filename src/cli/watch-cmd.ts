import type { Command } from 'commander';
import { status } from '@grpc/grpc-js';
import { checkHostPort } from '../common/host-port.js';
import { checkName } from '../common/names.js';
import { GrpcCallError } from '../common/grpc-call.js';
import type { WatchEvent } from '../gen/gridckpt/v1/common.js';
import { GridClient } from '../wire/grid-client.js';
import { ClusterClient } from '../wire/cluster-client.js';
import { AgentClient } from '../wire/agent-client.js';
import { UsageError, jsonLine, line, parseIntFlag } from './output.js';

// `gridckpt watch`: a service's events as they happen, one a line, until
// Ctrl-C or until the service ends the stream.

interface WatchFlags {
  grid?: string;
  cluster?: string;
  agent?: string;
  job?: string;
  json?: boolean;
  replay: string;
}

const TIERS = ['grid', 'cluster', 'agent'] as const;

export function addWatchCommand(program: Command): void {
  program.command('watch').description('print the events of a grid, a cluster or a node agent as they happen (rounds, recoveries, jobs, members), one a line')
    .option('--grid <host:port>', 'a grid coordinator\'s address')
    .option('--cluster <host:port>', 'a cluster coordinator\'s address')
    .option('--agent <host:port>', 'a node agent\'s address')
    .option('--job <id>', 'only this job\'s events')
    .option('--replay <n>', 'first the last n events the service kept', '0')
    .option('--json', 'one JSON object a line')
    .action((o: WatchFlags) => watch(o));
}

async function watch(o: WatchFlags): Promise<void> {
  const chosen = TIERS.filter((t) => o[t] !== undefined);
  if (chosen.length !== 1) throw new UsageError(`watch needs exactly one of --grid, --cluster or --agent (got ${chosen.length === 0 ? 'none' : chosen.map((t) => `--${t}`).join(', ')})`);
  const tier = chosen[0]!;
  const address = checkHostPort(`${tier} address`, o[tier]!);
  const jobId = o.job === undefined ? '' : checkName('job id', o.job);
  const replayRecent = parseIntFlag('replay', o.replay, 0, 1_000_000);
  const client = tier === 'grid' ? new GridClient(address) : tier === 'cluster' ? new ClusterClient(address) : new AgentClient(address);
  const what = `the ${tier === 'agent' ? 'node agent' : `${tier} coordinator`} at ${address}`;
  const stream = client.watch({ jobId, replayRecent });
  const stop = () => stream.cancel();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await stream.subscribed;
    process.stderr.write(`watching ${what}${jobId ? ` (job ${jobId})` : ''}; Ctrl-C stops\n`);
    for await (const e of stream.events()) line(o.json ? jsonLine(e) : eventLine(e));
    if (!stream.cancelled) process.stderr.write(`${what} ended the stream\n`);
  } catch (err) {
    const e = err as GrpcCallError;
    const hint = e.code === status.RESOURCE_EXHAUSTED ? ' (this watcher fell behind; watch again)' : '';
    throw new GrpcCallError(e.code ?? status.UNKNOWN, `cannot watch ${what}: ${e.details ?? String(err)}${hint}`, 'watch');
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    client.close();
  }
}

/** 10:31:02.345 #12 round bank 3 started→committed: epoch 3 committed (full) … */
export function eventLine(e: WatchEvent): string {
  const at = new Date(Number(e.atUnixMs)).toISOString().slice(11, 23);
  const change = e.from || e.to ? ` ${e.from || '·'}→${e.to || '·'}` : '';
  return `${at} #${e.seq} ${e.kind.padEnd(8)} ${e.jobId || '-'} ${e.subject}${change}: ${e.detail}`;
}
