import type { Command } from 'commander';
import { createLogger } from '../common/log.js';
import { agentConfigFromFlags, checkHostPort, FREEZERS } from '../node/config.js';
import { linkToCluster } from '../node/cluster-link.js';
import { parseIntFlag } from './output.js';
import { runAgent } from '../node/run-agent.js';
import { realRuntime } from '../wire/real-clients.js';
import { serviceSecurity } from './tls-flags.js';

// `gridckpt agent`: a node agent in the foreground until SIGINT/SIGTERM.

export function addAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run a node agent (page memory, units, checkpoints) as a service')
    .requiredOption('--data-dir <dir>', 'the agent\'s own directory (swap, unit socket, logs, incarnation)')
    .option('--node-id <id>', 'node name', 'node-1')
    .option('--store-dir <dir>', 'checkpoint store (default <data-dir>/store)')
    .option('--listen <host:port>', 'gRPC address (loopback)', '127.0.0.1:0')
    .option('--metrics-listen <host:port>', 'serve Prometheus /metrics here', '127.0.0.1:0')
    .option('--unit-socket <path>', 'Unix socket of the unit API (default <data-dir>/unit.sock)')
    .option('--memory-budget <size>', 'page memory before swapping, e.g. 256MiB', process.env['GRIDCKPT_MEMORY_BUDGET'] ?? '256MiB')
    .option('--freezer <kind>', `one of ${FREEZERS.join(', ')}`, process.env['GRIDCKPT_FREEZER'] ?? 'auto')
    .option('--freeze-timeout-ms <ms>', 'give up freezing after this long', '5000')
    .option('--full-every <n>', 'every nth epoch is full', '8')
    .option('--cluster <host:port>', 'register with this cluster coordinator and heartbeat to it')
    .option('--capacity <units>', 'units this node takes (with --cluster)', '4')
    .action(async (opts: Record<string, string | undefined>) => {
      const config = agentConfigFromFlags({
        nodeId: opts['nodeId'],
        dataDir: opts['dataDir']!,
        storeDir: opts['storeDir'],
        listen: opts['listen'],
        metricsListen: opts['metricsListen'] === 'none' ? undefined : opts['metricsListen'],
        unitSocket: opts['unitSocket'],
        memoryBudget: opts['memoryBudget'],
        freezer: opts['freezer'],
        freezeTimeoutMs: opts['freezeTimeoutMs'],
        fullEvery: opts['fullEvery'],
        underCluster: opts['cluster'] !== undefined,
      });
      const security = serviceSecurity('agent', config.nodeId, '--listen', config.listen);
      const log = createLogger(`agent:${config.nodeId}`);
      const runtime = realRuntime(security);
      const running = await runAgent(config, log, security, runtime);
      const status = running.agent.status();
      process.stdout.write(
        `${JSON.stringify({
          event: 'ready',
          nodeId: config.nodeId,
          grpc: running.address,
          metrics: running.metricsUrl,
          unitSocket: config.unitSocket,
          freezer: status.freezer,
          incarnation: String(status.incarnation),
          pid: process.pid,
          tls: security.kind === 'mtls',
        })}\n`,
      );
      log.info({ grpc: running.address, metrics: running.metricsUrl, freezer: status.freezer }, 'node agent serving');
      const link = opts['cluster']
        ? linkToCluster({
            clusterAddress: checkHostPort('cluster address', opts['cluster']),
            nodeId: config.nodeId,
            incarnation: status.incarnation,
            agentAddress: running.address,
            capacityUnits: parseIntFlag('capacity', opts['capacity'] ?? '4', 1, 4096),
            leases: running.agent.leases,
            reports: () => running.jobReports(),
            onJobChange: (l) => running.onJobChange(l),
            log,
            runtime,
          })
        : null;
      const shutdown = (signal: string) => {
        log.info({ signal }, 'shutting down');
        link?.stop();
        running.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error({ err: String(err) }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.once('SIGINT', () => shutdown('SIGINT'));
      process.once('SIGTERM', () => shutdown('SIGTERM'));
    });
}
