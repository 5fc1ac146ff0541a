import { mkdir } from 'node:fs/promises';
import { Server } from '@grpc/grpc-js';
import { bindServer, boundAddress, stopServer } from '../common/grpc-server.js';
import { HealthImplementation } from 'grpc-health-check';
import { ClusterServiceService } from '../gen/gridckpt/v1/cluster.js';
import { bumpIncarnation } from '../common/incarnation.js';
import { serveMetrics } from '../common/metrics-http.js';
import type { Logger } from '../common/log.js';
import { scaleDetectorConfig } from '../detector/index.js';
import { DEFAULT_ROUND_CONFIG, validateRoundConfig } from '../protocol/core/round.js';
import { ClusterCoordinator } from './coordinator.js';
import { JobTable } from './job-table.js';
import { ClusterMetrics } from './metrics.js';
import { clusterServiceHandlers } from './cluster-service.js';
import { DEFAULT_HUB_LIMITS, EventHub } from '../runtime/event-hub.js';
import type { TierRuntime } from '../wire/clients.js';
import { realRuntime } from '../wire/real-clients.js';
import { clusterWatchEvents } from './watch-events.js';

// Wires a cluster coordinator process.

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

/** A composition root: the real runtime unless the caller (the CLI) shares its own. */
export async function runCluster(cfg: ClusterProcessConfig, log: Logger, runtime: TierRuntime = realRuntime()) {
  await mkdir(cfg.dataDir, { recursive: true });
  await mkdir(cfg.storeDir, { recursive: true });
  const incarnation = await bumpIncarnation(cfg.dataDir);
  let coordinator: ClusterCoordinator | null = null;
  const metrics = new ClusterMetrics(() => coordinator);
  const hub = new EventHub(incarnation, DEFAULT_HUB_LIMITS, () => runtime.clock.wallMs());
  coordinator = new ClusterCoordinator(
    {
      clusterId: cfg.clusterId,
      incarnation,
      storeDir: cfg.storeDir,
      detector: scaleDetectorConfig(cfg.heartbeatIntervalMs),
      round: validateRoundConfig({
        ...DEFAULT_ROUND_CONFIG,
        prepareTimeoutMs: cfg.roundTimeoutMs,
        commitTimeoutMs: cfg.roundTimeoutMs * 4,
        manifestTimeoutMs: cfg.roundTimeoutMs,
        abortTimeoutMs: cfg.roundTimeoutMs,
      }),
      defaultCheckpointIntervalMs: cfg.checkpointIntervalMs,
      rpcTimeoutMs: cfg.roundTimeoutMs * 4,
      agentLeaseMs: cfg.agentLeaseMs || cfg.heartbeatIntervalMs * 10,
    },
    runtime,
    log,
    clusterWatchEvents(hub, metrics, cfg.clusterId, () => coordinator),
    await JobTable.open(cfg.dataDir),
  );
  coordinator.resume();
  const onBug = (err: unknown) => log.error({ err: err instanceof Error ? err.stack : String(err) }, 'request failed unexpectedly');
  const server = new Server();
  server.addService(ClusterServiceService, clusterServiceHandlers(coordinator, hub, onBug));
  const health = new HealthImplementation({ '': 'SERVING', 'gridckpt.v1.ClusterService': 'SERVING' });
  health.addToServer(server);
  const address = boundAddress(cfg.listen, await bindServer(server, cfg.listen));
  const metricsServer = cfg.metricsListen ? await serveMetrics(metrics.registry, cfg.metricsListen) : null;
  const c = coordinator;
  return {
    coordinator: c,
    address,
    incarnation,
    hub,
    metricsUrl: metricsServer?.url ?? null,
    async stop() {
      health.setStatus('', 'NOT_SERVING');
      // Open Watch streams would hold the server's graceful shutdown forever.
      hub.close();
      c.shutdown();
      await stopServer(server);
      if (metricsServer) await new Promise<void>((r) => metricsServer.server.close(() => r()));
    },
  };
}
