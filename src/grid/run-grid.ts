import { ensureWritable, listening } from '../common/startup-error.js';
import { Server } from '@grpc/grpc-js';
import { bindServer, boundAddress, stopServer } from '../common/grpc-server.js';
import { HealthImplementation } from 'grpc-health-check';
import { GridServiceService } from '../gen/gridckpt/v1/grid.js';
import { bumpIncarnation } from '../common/incarnation.js';
import { serveMetrics } from '../common/metrics-http.js';
import type { Logger } from '../common/log.js';
import { scaleDetectorConfig } from '../detector/index.js';
import { DEFAULT_ROUND_CONFIG, validateRoundConfig } from '../protocol/core/round.js';
import { MAX_FINAL_ROUND_ATTEMPTS } from '../protocol/core/final-round.js';
import { GridCatalog, type GridCatalogStore } from './catalog.js';
import { HaGrid } from './ha-grid.js';
import { GridShell } from './shell.js';
import { GridMetrics } from './metrics.js';
import { gridServiceHandlers, singleRole, type GridRole } from './grid-service.js';
import { DEFAULT_HUB_LIMITS, EventHub } from '../runtime/event-hub.js';
import type { TierRuntime } from '../wire/clients.js';
import { realRuntime } from '../wire/real-clients.js';
import { serverCredentials, type TransportSecurity } from '../common/transport-security.js';
import { guardService } from '../common/authz.js';
import { GRID_ACCESS } from './grid-access.js';
import { publishGridEvents } from './watch-events.js';

// Wires a grid coordinator process.

/** A recovery re-plans at most this many times (a lost target, a damaged line, a refused restore) before the job fails. */
const MAX_RECOVERY_ATTEMPTS = 16;
/** A cluster answering busy (a recovery of its own) is asked again after this. */
const RETRY_MS = 250;
const MAX_JOBS = 1_024;

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
  /** With etcd endpoints: elect a leader among grid coordinators there and keep the catalog there (docs/grid-ha.md). */
  etcd?: { hosts: string[]; leaseMs: number; advertise: string | null } | null;
}

/** A composition root: the real runtime unless the caller shares its own; security as runAgent's. */
export async function runGrid(cfg: GridProcessConfig, log: Logger, security: TransportSecurity, runtime: TierRuntime = realRuntime(security)) {
  // The catalog lives here: a data dir that takes no write would fail every line.
  await ensureWritable('data dir', cfg.dataDir);
  const incarnation = await bumpIncarnation(cfg.dataDir);
  const hub = new EventHub(incarnation, DEFAULT_HUB_LIMITS, () => runtime.clock.wallMs());
  let role: GridRole | null = null;
  const metrics = new GridMetrics(() => role?.shell()?.core.clustersView() ?? []);
  const rpcTimeoutMs = cfg.roundTimeoutMs * 4;
  // Long enough for a restarted grid to be back before the clusters fence its jobs.
  const clusterLeaseMs = cfg.clusterLeaseMs || Math.max(3_000, cfg.heartbeatIntervalMs * 10);
  const makeShell = (catalog: GridCatalogStore, ha: { term: bigint; mayDecide: () => boolean } | null): GridShell => {
    let shell: GridShell | null = null;
    shell = new GridShell({
      gridId: cfg.gridId,
      incarnation,
      ...(ha ? { leaderTerm: ha.term, mayDecide: ha.mayDecide } : {}),
      rpcTimeoutMs,
      core: {
        // Elected after another leader, which may have granted leases on the catalog's jobs (G1).
        ...(ha ? { resumed: true } : {}),
        detector: scaleDetectorConfig(cfg.heartbeatIntervalMs),
        round: validateRoundConfig({ ...DEFAULT_ROUND_CONFIG, prepareTimeoutMs: cfg.roundTimeoutMs, commitTimeoutMs: cfg.roundTimeoutMs * 4, manifestTimeoutMs: cfg.roundTimeoutMs, abortTimeoutMs: cfg.roundTimeoutMs }),
        checkpointIntervalMs: cfg.checkpointIntervalMs,
        clusterLeaseMs,
        // Until a cluster's registration says its own (the larger counts).
        agentLeaseMs: 0,
        callTimeoutMs: rpcTimeoutMs,
        maxRecoveryAttempts: MAX_RECOVERY_ATTEMPTS,
        maxFinalAttempts: MAX_FINAL_ROUND_ATTEMPTS,
        retryMs: RETRY_MS,
        maxJobs: MAX_JOBS,
      },
    },
    runtime,
    log,
    (events) => publishGridEvents({ hub, metrics, log, gridId: cfg.gridId, addressOf: (id) => shell?.clusters.get(id)?.address ?? '' }, events),
    catalog,
    );
    return shell;
  };
  const onBug = (err: unknown) => log.error({ err: err instanceof Error ? err.stack : String(err) }, 'request failed unexpectedly');
  const server = new Server();
  // The role answers the service: a lone grid's one shell, or the leader's while this process leads.
  const roleNow = (): GridRole => role!;
  const proxy: GridRole = { gridId: cfg.gridId, incarnation, shell: () => roleNow().shell(), view: () => roleNow().view() };
  server.addService(GridServiceService, guardService('GridService', gridServiceHandlers(proxy, hub, cfg.checkpointIntervalMs, onBug), GRID_ACCESS, security));
  const health = new HealthImplementation({ '': 'SERVING', 'gridckpt.v1.GridService': 'SERVING' });
  health.addToServer(server);
  let ha: HaGrid | null = null;
  if (!cfg.etcd) role = singleRole(makeShell(await GridCatalog.open(cfg.dataDir), null));
  const address = boundAddress(cfg.listen, await listening('gRPC', cfg.listen, () => bindServer(server, cfg.listen, serverCredentials(security))));
  if (cfg.etcd) {
    // Campaigns once it serves: its election key names the address clusters and clients reach it at.
    ha = new HaGrid({
      gridId: cfg.gridId, incarnation, etcdHosts: cfg.etcd.hosts, leaseMs: cfg.etcd.leaseMs, address: cfg.etcd.advertise ?? address, log, runtime,
      makeShell: (term, catalog, mayDecide) => makeShell(catalog, { term, mayDecide }),
      onLeadership: (c) => void hub.emit({ kind: 'member', subject: cfg.gridId, to: c.to, detail: c.detail }),
    });
    role = ha;
    ha.start();
  }
  const metricsListen = cfg.metricsListen;
  const metricsServer = metricsListen ? await listening('metrics', metricsListen, () => serveMetrics(metrics.registry, metricsListen)) : null;
  return {
    get shell(): GridShell | null { return role?.shell() ?? null; },
    ha,
    address,
    incarnation,
    hub,
    metricsUrl: metricsServer?.url ?? null,
    async stop() {
      health.setStatus('', 'NOT_SERVING');
      // Open Watch streams would hold the server's graceful shutdown forever.
      hub.close();
      if (ha) await ha.stop();
      else role?.shell()?.shutdown();
      await stopServer(server, runtime.timers);
      if (metricsServer) await new Promise<void>((r) => metricsServer.server.close(() => r()));
    },
  };
}
