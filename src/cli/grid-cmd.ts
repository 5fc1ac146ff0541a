import type { Command } from 'commander';
import { status as grpcStatus } from '@grpc/grpc-js';
import { createLogger } from '../common/log.js';
import { checkName } from '../common/names.js';
import { checkHostPort } from '../node/config.js';
import { runGrid } from '../grid/run-grid.js';
import { GridClient } from '../wire/grid-client.js';
import type { GridJobStatus } from '../gen/gridckpt/v1/grid.js';
import { clusterBankSpec } from './cluster-cmd.js';
import { bankParams } from './bank-cmds.js';
import { UsageError, parseIntFlag, printJson, line } from './output.js';
import { clientSecurity, serviceSecurity } from './tls-flags.js';

// `gridckpt grid`: a grid coordinator in the foreground; and the operator's
// commands against one.

export function addGridCommands(program: Command): void {
  program
    .command('grid')
    .description('run a grid coordinator: cluster registry, heartbeats, coordinated grid rounds, the catalog of recovery lines')
    .requiredOption('--data-dir <dir>', 'its own directory (incarnation, catalog)')
    .option('--grid-id <id>', 'grid name', 'grid-1')
    .option('--listen <host:port>', 'gRPC address (loopback)', '127.0.0.1:0')
    .option('--metrics-listen <host:port>', 'serve Prometheus /metrics here (none to disable)', '127.0.0.1:0')
    .option('--heartbeat-interval-ms <ms>', 'heartbeat period asked of clusters', '100')
    .option('--checkpoint-interval-ms <ms>', 'default grid round period of a job', '1000')
    .option('--round-timeout-ms <ms>', 'prepare deadline of a grid round', '10000')
    .option('--cluster-lease-ms <ms>', 'job lease given to clusters: their units stop when it is not renewed (default the larger of 3 s and ten heartbeat intervals)')
    .option('--etcd <url,...>', 'elect a leader among two or three grid coordinators through etcd and keep the catalog there (docs/grid-ha.md); without it, one grid with its catalog file')
    .option('--etcd-lease-ms <ms>', 'the leader\'s etcd lease (whole seconds): a standby takes over within two of them', '3000')
    .action(async (o: Record<string, string>) => {
      const cfg = {
        gridId: checkName('grid id', o['gridId']!),
        dataDir: o['dataDir']!,
        listen: checkHostPort('listen address', o['listen']!),
        metricsListen: o['metricsListen'] === 'none' ? null : checkHostPort('metrics address', o['metricsListen']!),
        heartbeatIntervalMs: parseIntFlag('heartbeat interval', o['heartbeatIntervalMs']!, 10, 60_000),
        checkpointIntervalMs: parseIntFlag('checkpoint interval', o['checkpointIntervalMs']!, 10, 86_400_000),
        roundTimeoutMs: parseIntFlag('round timeout', o['roundTimeoutMs']!, 10, 600_000),
        clusterLeaseMs: o['clusterLeaseMs'] === undefined ? 0 : parseIntFlag('cluster lease', o['clusterLeaseMs'], 50, 3_600_000),
        etcd: o['etcd'] === undefined ? null : { hosts: etcdHosts(o['etcd']), leaseMs: parseIntFlag('etcd lease', o['etcdLeaseMs']!, 1_000, 600_000), advertise: null },
      };
      // A lease of fewer than three heartbeats lapses on one late answer: units would be fenced for nothing.
      if (cfg.clusterLeaseMs !== 0 && cfg.clusterLeaseMs < 3 * cfg.heartbeatIntervalMs) {
        throw new UsageError(`bad --cluster-lease-ms ${cfg.clusterLeaseMs}: it must be at least three heartbeat intervals (${3 * cfg.heartbeatIntervalMs} ms)`);
      }
      const security = serviceSecurity('grid', cfg.gridId, '--listen', cfg.listen);
      const log = createLogger(`grid:${cfg.gridId}`);
      const running = await runGrid(cfg, log, security);
      process.stdout.write(`${JSON.stringify({ event: 'ready', gridId: cfg.gridId, grpc: running.address, metrics: running.metricsUrl, incarnation: String(running.incarnation), pid: process.pid, tls: security.kind === 'mtls', etcd: cfg.etcd !== null })}\n`);
      const shutdown = () => void running.stop().then(() => process.exit(0));
      process.once('SIGINT', shutdown);
      process.once('SIGTERM', shutdown);
    });

  const gridOpt = ['--grid <host:port,...>', 'grid coordinator address (several: grid coordinators electing a leader; the leader answers)', process.env['GRIDCKPT_GRID'] ?? '127.0.0.1:7272'] as const;

  program.command('grid-status').description('clusters (verdict, phi) and jobs (recovery lines) of a grid')
    .option(...gridOpt).option('--json', 'print JSON')
    .action((o: { grid: string; json?: boolean }) => gridStatus(o.grid, o.json === true));

  program.command('jobs').description('the jobs of a grid with their state and newest recovery lines')
    .option(...gridOpt).option('--json', 'print JSON')
    .action((o: { grid: string; json?: boolean }) => gridJobs(o.grid, o.json === true));

  program.command('grid-bank').description('submit a bank job spread over the grid\'s clusters (one sub-bank per unit)')
    .option(...gridOpt).option('--job <id>', 'job id', 'bank')
    .option('--accounts <n>', 'accounts per unit', '1024').option('--units <n>', 'units', '4').option('--ops <n>', 'transfers per unit', '2000').option('--seed <n>', 'seed', '1')
    .option('--interval-ms <ms>', 'grid round period (0: the grid default)', '0').option('--json', 'print JSON')
    .action(async (o: { grid: string; job: string; accounts: string; units: string; ops: string; seed: string; intervalMs: string; json?: boolean }) => {
      const p = bankParams(o);
      await withGrid(o.grid, async (c) => {
        const r = await c.submitGridJob({ job: clusterBankSpec(checkName('job id', o.job), p, parseIntFlag('interval', o.intervalMs, 0, 86_400_000)) });
        if (o.json) printJson(r.job);
        else line(`job ${o.job} spread: ${Object.entries(r.job!.clusters).map(([u, k]) => `${u}@${k}`).join(' ')}`);
      });
    });

  program.command('grid-checkpoint').description('run one coordinated grid round of a job now')
    .option(...gridOpt).requiredOption('--job <id>').option('--json', 'print JSON')
    .action((o: { grid: string; job: string; json?: boolean }) => gridCheckpoint(o.grid, o.job, o.json === true));
}

/** etcd endpoints: a comma list of http(s) URLs (host:port alone is taken as http). */
export function etcdHosts(flag: string): string[] {
  const hosts = flag.split(',').map((h) => h.trim()).filter((h) => h !== '');
  if (hosts.length === 0) throw new UsageError('bad --etcd: name at least one endpoint (http://host:port)');
  return hosts.map((h) => {
    const url = /^https?:\/\//.test(h) ? h : `http://${h}`;
    if (!/^https?:\/\/[^/\s]+(:\d+)?\/?$/.test(url)) throw new UsageError(`bad --etcd endpoint ${JSON.stringify(h)}: expected http://host:port`);
    return url;
  });
}

/** Grid coordinator addresses: one, or a comma list of grid coordinators of which one leads. */
export function gridAddresses(flag: string): string[] {
  return flag.split(',').map((a) => checkHostPort('grid address', a.trim()));
}

/**
 * Runs fn against the grid; with several addresses, against each in turn until one answers other than
 * UNAVAILABLE (a standby answers UNAVAILABLE naming the leader, a dead coordinator does too).
 */
async function withGrid(flag: string, fn: (c: GridClient) => Promise<void>): Promise<void> {
  const addresses = gridAddresses(flag);
  for (const [i, address] of addresses.entries()) {
    const c = new GridClient(address, undefined, {}, clientSecurity());
    try {
      await fn(c);
      return;
    } catch (err) {
      if ((err as { code?: number }).code !== grpcStatus.UNAVAILABLE || i === addresses.length - 1) throw err;
    } finally {
      c.close();
    }
  }
}

export function gridStatus(address: string, json: boolean): Promise<void> {
  return withGrid(address, async (c) => {
    const s = await c.status();
    if (s.role === 'standby') throw Object.assign(new Error(`grid ${s.gridId} is a standby (leader: ${s.leaderAddress || 'none yet'})`), { code: grpcStatus.UNAVAILABLE });
    if (json) return printJson(s);
    line(`grid ${s.gridId} (incarnation ${s.incarnation}${s.role === 'leader' ? `, leader of term ${s.leaderTerm}` : ''}), ${s.failuresDetected} cluster failures detected`);
    for (const x of s.clusters) line(`  cluster ${x.clusterId} ${x.verdict} phi ${x.phi.toFixed(2)} heartbeat ${x.heartbeatAgeMs.toFixed(0)} ms ago, ${x.address}`);
    for (const j of s.jobs) printJob(j);
  });
}

export function gridJobs(address: string, json: boolean): Promise<void> {
  return withGrid(address, async (c) => {
    const s = await c.status();
    if (s.role === 'standby') throw Object.assign(new Error(`grid ${s.gridId} is a standby (leader: ${s.leaderAddress || 'none yet'})`), { code: grpcStatus.UNAVAILABLE });
    if (json) return printJson(s.jobs);
    if (s.jobs.length === 0) line('no jobs');
    for (const j of s.jobs) printJob(j);
  });
}

export function gridCheckpoint(address: string, job: string, json: boolean): Promise<void> {
  return withGrid(address, async (c) => {
    const r = await c.checkpointGridJob({ jobId: checkName('job id', job) });
    if (json) printJson(r);
    else line(`grid epoch ${r.line!.gridEpoch} committed in ${r.totalMs.toFixed(1)} ms: ${Object.entries(r.line!.clusterEpochs).map(([k, v]) => `${k}@${v}`).join(' ')}`);
  });
}

function printJob(j: GridJobStatus): void {
  line(`  job ${j.jobId} ${j.state}: grid epoch ${j.lastGridEpoch}, ${j.roundsCommitted} rounds committed, ${j.roundsAborted} aborted${j.lastError ? ` (${j.lastError})` : ''}`);
  const l = j.lines[j.lines.length - 1];
  if (l) line(`    last recovery line: ${Object.entries(l.clusterEpochs).map(([k, v]) => `${k}@${v}`).join(' ')}`);
}
