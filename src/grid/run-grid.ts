import { mkdir } from 'node:fs/promises';
import { Server } from '@grpc/grpc-js';
import { bindServer, boundAddress, stopServer } from '../common/grpc-server.js';
import { HealthImplementation } from 'grpc-health-check';
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import { GridServiceService } from '../gen/gridckpt/v1/grid.js';
import { bumpIncarnation } from '../common/incarnation.js';
import { serveMetrics } from '../common/metrics-http.js';
import type { Logger } from '../common/log.js';
import { scaleDetectorConfig } from '../detector/index.js';
import { DEFAULT_ROUND_CONFIG, validateRoundConfig } from '../protocol/core/round.js';
import { GridCatalog } from './catalog.js';
import { GridCoordinator } from './coordinator.js';
import { gridServiceHandlers } from './grid-service.js';
import { DEFAULT_HUB_LIMITS, EventHub } from '../runtime/event-hub.js';
import type { TierRuntime } from '../wire/clients.js';
import { realRuntime } from '../wire/real-clients.js';
import { gridWatchEvents } from './watch-events.js';

// Wires a grid coordinator process; its metrics live here (the tier's only prom-client user).

export interface GridProcessConfig {
  gridId: string;
  dataDir: string;
  listen: string;
  metricsListen: string | null;
  heartbeatIntervalMs: number;
  checkpointIntervalMs: number;
  roundTimeoutMs: number;
  /** 0: the larger of 3 s and ten heartbeat intervals. */
  clusterLeaseMs: number;
}

/** A composition root: the real runtime unless the caller shares its own. */
export async function runGrid(cfg: GridProcessConfig, log: Logger, runtime: TierRuntime = realRuntime()) {
  await mkdir(cfg.dataDir, { recursive: true });
  const incarnation = await bumpIncarnation(cfg.dataDir);
  const catalog = await GridCatalog.open(cfg.dataDir);
  const hub = new EventHub(incarnation, DEFAULT_HUB_LIMITS, () => runtime.clock.wallMs());
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: 'gridckpt_grid_process_' });
  const rounds = new Counter({ name: 'gridckpt_grid_rounds_total', help: 'Grid rounds by outcome', labelNames: ['outcome'], registers });
  const failures = new Counter({ name: 'gridckpt_grid_cluster_failures_detected_total', help: 'Clusters declared failed', registers });
  const recoveries = new Counter({ name: 'gridckpt_grid_recoveries_total', help: 'Job recoveries from a lost cluster, by outcome', labelNames: ['outcome'], registers });
  const recoverySeconds = new Histogram({
    name: 'gridckpt_grid_recovery_seconds', help: 'From starting a recovery (lease wait included) to the job running again',
    buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64], registers,
  });
  let coordinator: GridCoordinator | null = null;
  new Gauge({ name: 'gridckpt_grid_heartbeat_phi', help: 'Phi accrual suspicion, per cluster', labelNames: ['cluster'], registers, collect() {
    this.reset();
    for (const p of coordinator?.detector.status() ?? []) this.set({ cluster: p.peer }, p.phi);
  } });
  new Gauge({ name: 'gridckpt_grid_heartbeat_age_seconds', help: 'Time since the last heartbeat, per cluster', labelNames: ['cluster'], registers, collect() {
    this.reset();
    for (const p of coordinator?.detector.status() ?? []) this.set({ cluster: p.peer }, p.lastHeartbeatAgeMs / 1000);
  } });
  coordinator = new GridCoordinator(
    {
      gridId: cfg.gridId,
      incarnation,
      detector: scaleDetectorConfig(cfg.heartbeatIntervalMs),
      round: validateRoundConfig({ ...DEFAULT_ROUND_CONFIG, prepareTimeoutMs: cfg.roundTimeoutMs, commitTimeoutMs: cfg.roundTimeoutMs * 4, manifestTimeoutMs: cfg.roundTimeoutMs, abortTimeoutMs: cfg.roundTimeoutMs }),
      defaultCheckpointIntervalMs: cfg.checkpointIntervalMs,
      rpcTimeoutMs: cfg.roundTimeoutMs * 4,
      // Long enough for a restarted grid to be back before the clusters fence its jobs.
      clusterLeaseMs: cfg.clusterLeaseMs || Math.max(3_000, cfg.heartbeatIntervalMs * 10),
    },
    runtime,
    catalog,
    log,
    gridWatchEvents(hub, {
      roundFinished: (o) => rounds.inc({ outcome: o.kind }),
      clusterVerdict: (c) => { if (c.to === 'failed') failures.inc(); },
      recovered: (_jobId, ms, ok) => {
        recoveries.inc({ outcome: ok ? 'ok' : 'failed' });
        if (ok) recoverySeconds.observe(ms / 1000);
      },
    }, cfg.gridId, () => coordinator),
  );
  const g = coordinator;
  g.resume();
  const onBug = (err: unknown) => log.error({ err: err instanceof Error ? err.stack : String(err) }, 'request failed unexpectedly');
  const server = new Server();
  server.addService(GridServiceService, gridServiceHandlers(g, hub, onBug));
  const health = new HealthImplementation({ '': 'SERVING', 'gridckpt.v1.GridService': 'SERVING' });
  health.addToServer(server);
  const address = boundAddress(cfg.listen, await bindServer(server, cfg.listen));
  const metricsServer = cfg.metricsListen ? await serveMetrics(registry, cfg.metricsListen) : null;
  return {
    coordinator: g,
    address,
    incarnation,
    hub,
    metricsUrl: metricsServer?.url ?? null,
    async stop() {
      health.setStatus('', 'NOT_SERVING');
      // Open Watch streams would hold the server's graceful shutdown forever.
      hub.close();
      g.shutdown();
      await stopServer(server);
      if (metricsServer) await new Promise<void>((r) => metricsServer.server.close(() => r()));
    },
  };
}
