import { resolve } from 'node:path';
import type { Command } from 'commander';
import { createLogger } from '../common/log.js';
import { checkName } from '../common/names.js';
import { checkHostPort } from '../node/config.js';
import { runCluster } from '../cluster/run-cluster.js';
import { linkToGrid } from '../cluster/grid-link.js';
import { realRuntime } from '../wire/real-clients.js';
import { clientSecurity, serviceSecurity } from './tls-flags.js';
import { ClusterClient } from '../wire/cluster-client.js';
import { clusterBankSpec } from '../bank/job.js';
export { clusterBankSpec };
import { bankParams } from './bank-cmds.js';
import { UsageError, parseIntFlag, printJson, line } from './output.js';

// `gridckpt cluster`: a cluster coordinator in the foreground; and the
// operator's commands against one.

export function addClusterCommands(program: Command): void {
  program
    .command('cluster')
    .description('run a cluster coordinator: node registry, heartbeats, placement, coordinated rounds, recovery')
    .requiredOption('--data-dir <dir>', 'its own directory (incarnation)')
    .requiredOption('--store-dir <dir>', 'the cluster checkpoint store, shared by its agents and outliving any one node')
    .option('--cluster-id <id>', 'cluster name', 'cluster-1')
    .option('--listen <host:port>', 'gRPC address (loopback)', '127.0.0.1:0')
    .option('--metrics-listen <host:port>', 'serve Prometheus /metrics here (none to disable)', '127.0.0.1:0')
    .option('--heartbeat-interval-ms <ms>', 'heartbeat period asked of agents', '100')
    .option('--checkpoint-interval-ms <ms>', 'default round period of a job', '1000')
    .option('--round-timeout-ms <ms>', 'prepare deadline of a round', '5000')
    .option('--agent-lease-ms <ms>', 'job lease given to agents: their units die when it is not renewed (default ten heartbeat intervals)')
    .option('--grid <host:port,...>', 'register with this grid coordinator and heartbeat to it (several: grid coordinators electing a leader through etcd; the leader is found)')
    .action(async (o: Record<string, string>) => {
      const cfg = {
        clusterId: checkName('cluster id', o['clusterId']!),
        dataDir: o['dataDir']!,
        // Absolute: the grid hands it to other clusters when this one is lost.
        storeDir: resolve(o['storeDir']!),
        listen: checkHostPort('listen address', o['listen']!),
        metricsListen: o['metricsListen'] === 'none' ? null : checkHostPort('metrics address', o['metricsListen']!),
        heartbeatIntervalMs: parseIntFlag('heartbeat interval', o['heartbeatIntervalMs']!, 10, 60_000),
        checkpointIntervalMs: parseIntFlag('checkpoint interval', o['checkpointIntervalMs']!, 10, 86_400_000),
        roundTimeoutMs: parseIntFlag('round timeout', o['roundTimeoutMs']!, 10, 600_000),
        agentLeaseMs: o['agentLeaseMs'] === undefined ? 0 : parseIntFlag('agent lease', o['agentLeaseMs'], 50, 3_600_000),
      };
      // A lease of fewer than three heartbeats lapses on one late answer: units would be fenced for nothing.
      if (cfg.agentLeaseMs !== 0 && cfg.agentLeaseMs < 3 * cfg.heartbeatIntervalMs) {
        throw new UsageError(`bad --agent-lease-ms ${cfg.agentLeaseMs}: it must be at least three heartbeat intervals (${3 * cfg.heartbeatIntervalMs} ms)`);
      }
      const security = serviceSecurity('cluster', cfg.clusterId, '--listen', cfg.listen);
      const log = createLogger(`cluster:${cfg.clusterId}`);
      const runtime = realRuntime(security);
      const running = await runCluster(cfg, log, security, runtime);
      process.stdout.write(`${JSON.stringify({ event: 'ready', clusterId: cfg.clusterId, grpc: running.address, metrics: running.metricsUrl, incarnation: String(running.incarnation), pid: process.pid, tls: security.kind === 'mtls' })}\n`);
      const link = o['grid']
        ? linkToGrid({
            gridAddresses: o['grid'].split(',').map((a) => checkHostPort('grid address', a.trim())), clusterId: cfg.clusterId, incarnation: running.incarnation, clusterAddress: running.address,
            storeDir: cfg.storeDir, agentLeaseMs: running.shell.settings.core.agentLeaseMs, beatTimeoutMs: cfg.heartbeatIntervalMs * 5, log, runtime,
          })
        : null;
      running.shell.attachGrid(link ? link.beat : null);
      const shutdown = () => {
        link?.stop();
        void running.stop().then(() => process.exit(0));
      };
      process.once('SIGINT', shutdown);
      process.once('SIGTERM', shutdown);
    });

  const clusterOpt = ['--cluster <host:port>', 'cluster coordinator address', process.env['GRIDCKPT_CLUSTER'] ?? '127.0.0.1:7171'] as const;

  program.command('cluster-status').description('nodes (verdict, phi, heartbeat age) and jobs of a cluster')
    .option(...clusterOpt).option('--json', 'print JSON')
    .action(async (o: { cluster: string; json?: boolean }) => {
      const c = new ClusterClient(checkHostPort('cluster address', o.cluster), undefined, {}, clientSecurity());
      try {
        const s = await c.status();
        if (o.json) return printJson(s);
        line(`cluster ${s.clusterId} (incarnation ${s.incarnation}), store ${s.storeDir}`);
        for (const n of s.nodes) line(`  node ${n.nodeId} ${n.verdict} phi ${n.phi.toFixed(2)} heartbeat ${n.heartbeatAgeMs.toFixed(0)} ms ago, ${n.placedUnits}/${n.capacityUnits} units, ${n.address}`);
        for (const j of s.jobs) line(`  job ${j.jobId} ${j.state}: epoch ${j.lastEpoch}, ${j.roundsCommitted} rounds committed, ${j.roundsAborted} aborted, ${j.recoveries} recoveries${j.lastError ? ` (${j.lastError})` : ''}`);
      } finally {
        c.close();
      }
    });

  program.command('cluster-bank').description('submit a bank job to a cluster: one sub-bank per unit, placed by the coordinator')
    .option(...clusterOpt).option('--job <id>', 'job id', 'bank')
    .option('--accounts <n>', 'accounts per unit', '1024').option('--units <n>', 'units', '4').option('--ops <n>', 'transfers per unit', '2000').option('--seed <n>', 'seed', '1')
    .option('--interval-ms <ms>', 'round period (0: the cluster default)', '0').option('--json', 'print JSON')
    .action(async (o: { cluster: string; job: string; accounts: string; units: string; ops: string; seed: string; intervalMs: string; json?: boolean }) => {
      const p = bankParams(o);
      const c = new ClusterClient(checkHostPort('cluster address', o.cluster), undefined, {}, clientSecurity());
      try {
        const r = await c.submitJob({ job: clusterBankSpec(checkName('job id', o.job), p, parseIntFlag('interval', o.intervalMs, 0, 86_400_000)), gridManaged: false, gridGen: 0n });
        if (o.json) printJson(r.job);
        else line(`job ${o.job} placed: ${r.job!.placements.map((x) => `${x.unitId}@${x.nodeId}`).join(' ')}`);
      } finally {
        c.close();
      }
    });
}

