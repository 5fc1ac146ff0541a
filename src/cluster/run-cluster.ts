import { statfs } from 'node:fs/promises';
import { ensureWritable, listening } from '../common/startup-error.js';
import { Server } from '@grpc/grpc-js';
import { bindServer, boundAddress, stopServer } from '../common/grpc-server.js';
import { HealthImplementation } from 'grpc-health-check';
import { ClusterServiceService } from '../gen/gridckpt/v1/cluster.js';
import { bumpIncarnation } from '../common/incarnation.js';
import { serveMetrics } from '../common/metrics-http.js';
import type { Logger } from '../common/log.js';
import { scaleDetectorConfig } from '../detector/index.js';
import { DEFAULT_ROUND_CONFIG, validateRoundConfig } from '../protocol/core/round.js';
import { ClusterShell, type Resume } from './shell.js';
import { listCommitted } from '../store/index.js';
import { MAX_FINAL_ROUND_ATTEMPTS } from '../protocol/core/final-round.js';
import { JobTable } from './job-table.js';
import { ClusterMetrics } from './metrics.js';
import { clusterServiceHandlers } from './cluster-service.js';
import { DEFAULT_HUB_LIMITS, EventHub } from '../runtime/event-hub.js';
import type { TierRuntime } from '../wire/clients.js';
import { realRuntime } from '../wire/real-clients.js';
import { serverCredentials, type TransportSecurity } from '../common/transport-security.js';
import { guardService } from '../common/authz.js';
import { CLUSTER_ACCESS } from './cluster-access.js';
import { publishClusterEvents } from './watch-events.js';

// Wires a cluster coordinator process.

/** Every Nth epoch of a local job is full unless its spec says otherwise. */
const DEFAULT_FULL_EVERY = 8;
/** A recovery re-plans at most this many times (a lost target, a damaged epoch) before the job fails. */
const MAX_RECOVERY_ATTEMPTS = 8;
/** Committed epochs the core remembers per job: how far a recovery may walk back. */
const KEEP_EPOCHS = 16;
const MAX_JOBS = 1_024;

export interface ClusterProcessConfig {
  clusterId: string;
  dataDir: string;
  storeDir: string;
  listen: string;
  metricsListen: string | null;
  heartbeatIntervalMs: number;
  checkpointIntervalMs: number;
  roundTimeoutMs: number;
  /** 0: ten heartbeat intervals. */
  agentLeaseMs: number;
}

/** A composition root: the real runtime unless the caller (the CLI) shares its own; security as runAgent's. */
export async function runCluster(cfg: ClusterProcessConfig, log: Logger, security: TransportSecurity, runtime: TierRuntime = realRuntime(security)) {
  // The store's epoch files and the job table hold jobs' data and commands: the coordinator's user's alone
  // (files 0600, directories 0700), as the agents that share the store make theirs (run-agent.ts).
  process.umask(0o077);
  await ensureWritable('data dir', cfg.dataDir);
  // The coordinator writes every manifest: a store it cannot write would fail every round.
  await ensureWritable('store dir', cfg.storeDir);
  const incarnation = await bumpIncarnation(cfg.dataDir);
  let shell: ClusterShell | null = null;
  const metrics = new ClusterMetrics(() => shell?.core.nodesView() ?? [], () => shell && {
    jobs: shell.collector.core.status(),
    retireFailures: shell.retireFailures,
    space: () => statfs(cfg.storeDir).then((s) => ({ freeBytes: s.bavail * s.bsize, sizeBytes: s.blocks * s.bsize }), () => null),
  });
  const hub = new EventHub(incarnation, DEFAULT_HUB_LIMITS, () => runtime.clock.wallMs());
  const table = await JobTable.open(cfg.dataDir);
  const agentLeaseMs = cfg.agentLeaseMs || cfg.heartbeatIntervalMs * 10;
  const rpcTimeoutMs = cfg.roundTimeoutMs * 4;
  shell = new ClusterShell(
    {
      clusterId: cfg.clusterId,
      incarnation,
      storeDir: cfg.storeDir,
      defaultCheckpointIntervalMs: cfg.checkpointIntervalMs,
      defaultFullEvery: DEFAULT_FULL_EVERY,
      rpcTimeoutMs,
      core: {
        heartbeatIntervalMs: cfg.heartbeatIntervalMs,
        detector: scaleDetectorConfig(cfg.heartbeatIntervalMs),
        round: validateRoundConfig({
          ...DEFAULT_ROUND_CONFIG,
          prepareTimeoutMs: cfg.roundTimeoutMs,
          commitTimeoutMs: cfg.roundTimeoutMs * 4,
          manifestTimeoutMs: cfg.roundTimeoutMs,
          abortTimeoutMs: cfg.roundTimeoutMs,
        }),
        agentLeaseMs,
        // Until the grid's first answer says otherwise (its RegisterCluster answer does).
        gridLeaseMs: 3_000,
        callTimeoutMs: rpcTimeoutMs,
        maxRecoveryAttempts: MAX_RECOVERY_ATTEMPTS,
        maxFinalAttempts: MAX_FINAL_ROUND_ATTEMPTS,
        keepEpochs: KEEP_EPOCHS,
        maxJobs: MAX_JOBS,
        resumeWaitMs: agentLeaseMs * 3,
      },
    },
    runtime,
    log,
    (events) => publishClusterEvents({ hub, metrics, log, clusterId: cfg.clusterId, jobNow: (id) => shell?.core.jobView(id) ?? null }, events),
    table,
    await resumeFrom(table, cfg.storeDir, log),
  );
  const onBug = (err: unknown) => log.error({ err: err instanceof Error ? err.stack : String(err) }, 'request failed unexpectedly');
  const server = new Server();
  server.addService(ClusterServiceService, guardService('ClusterService', clusterServiceHandlers(shell, hub, onBug), CLUSTER_ACCESS, security));
  const health = new HealthImplementation({ '': 'SERVING', 'gridckpt.v1.ClusterService': 'SERVING' });
  health.addToServer(server);
  const address = boundAddress(cfg.listen, await listening('gRPC', cfg.listen, () => bindServer(server, cfg.listen, serverCredentials(security))));
  const metricsListen = cfg.metricsListen;
  const metricsServer = metricsListen ? await listening('metrics', metricsListen, () => serveMetrics(metrics.registry, metricsListen)) : null;
  const c = shell;
  return {
    shell: c,
    address,
    incarnation,
    hub,
    metricsUrl: metricsServer?.url ?? null,
    async stop() {
      health.setStatus('', 'NOT_SERVING');
      // Open Watch streams would hold the server's graceful shutdown forever.
      hub.close();
      c.shutdown();
      await stopServer(server, runtime.timers);
      if (metricsServer) await new Promise<void>((r) => metricsServer.server.close(() => r()));
    },
  };
}

/** What a restarted coordinator's core takes back: the job table's rows, and each job's committed epochs as the store has them. */
async function resumeFrom(table: JobTable, storeDir: string, log: Logger): Promise<Resume> {
  const entries = table.all();
  const committed = new Map<string, bigint[]>();
  for (const e of entries) {
    const found = await listCommitted(storeDir, e.row.jobId).catch((err: unknown) => {
      log.warn({ jobId: e.row.jobId, err: String(err) }, 'could not list the committed epochs of a resumed job; using the job table\'s');
      return null;
    });
    if (found) committed.set(e.row.jobId, found.map((m) => m.epoch));
  }
  const specs = new Map(entries.map((e) => [e.row.jobId, {
    ...e.spec,
    ...(e.retention ? { keepEpochs: e.retention.keepLast, keepEpochsForMs: BigInt(e.retention.keepForMs) } : {}),
  }]));
  return { rows: entries.map((e) => e.row), specs, committed, forgotten: table.forgotten() };
}
