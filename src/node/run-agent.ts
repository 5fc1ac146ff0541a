import { realpath, chmod } from 'node:fs/promises';
import { removeStaleSocket } from './unit-socket.js';
import { join } from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { bindServer, boundAddress, stopServer } from '../common/grpc-server.js';
import { HealthImplementation } from 'grpc-health-check';
import { NodeAgentServiceService } from '../gen/gridckpt/v1/node_agent.js';
import { UnitServiceService } from '../gen/gridckpt/v1/unit.js';
import { bumpIncarnation } from '../common/incarnation.js';
import { StartupError, ensureDir, ensureWritable, listening } from '../common/startup-error.js';
import { HostLockBusy, takeHostLock, type HostLock } from './host-lock.js';
import { serveMetrics } from '../common/metrics-http.js';
import type { Logger } from '../common/log.js';
import type { AgentConfig } from './config.js';
import { NodeAgent } from './agent.js';
import { PageMemory } from './memory/page-memory.js';
import { SwapFile } from './memory/swap-file.js';
import { detectFreezer } from './units/freezer.js';
import { UnitSupervisor } from './units/unit-supervisor.js';
import { AgentMetrics } from './metrics.js';
import { agentServiceHandlers } from './agent-service.js';
import { StartGens, type JobReport } from './job-reports.js';
import { unitServiceHandlers, UnitLifelines } from './unit-service.js';
import { DEFAULT_HUB_LIMITS, EventHub } from '../runtime/event-hub.js';
import type { TierRuntime } from '../wire/clients.js';
import { realRuntime } from '../wire/real-clients.js';
import { serverCredentials, type TransportSecurity } from '../common/transport-security.js';
import { guardService } from '../common/authz.js';
import { agentAccess } from './agent-access.js';

// Wires a node agent process: directories, incarnation, freezer, page
// memory, supervisor, the two gRPC servers and /metrics.

export interface RunningAgent {
  agent: NodeAgent;
  address: string;
  metricsUrl: string | null;
  /** What its heartbeats tell its cluster about its jobs (see job-reports.ts). */
  jobReports(): JobReport[];
  /** Calls listener at every change of a job's state, from inside the agent's step: do no I/O inline. */
  onJobChange(listener: () => void): void;
  stop(): Promise<void>;
}


/**
 * A composition root: the real runtime unless the caller (the CLI) shares its own.
 * security: how its service is reached (mTLS and the access table, or --insecure on loopback).
 */
export async function runAgent(config: AgentConfig, log: Logger, security: TransportSecurity, runtime: TierRuntime = realRuntime(security)): Promise<RunningAgent> {
  // Everything the agent creates holds a job's data or secrets (swap pages, unit logs, epoch files, its
  // incarnation, the unit socket): files 0600 and directories 0700, the agent's user's alone. One umask covers
  // the store's files too, whichever module writes them; units get their own umask back (unit-supervisor.ts).
  // Every tier of a cluster runs as one user (root, for the cgroup freezer), so the shared store still works.
  process.umask(0o077);
  await ensureDir('data dir', config.dataDir);
  await chmod(config.dataDir, 0o700);
  // Before anything that touches what another agent may own (its incarnation file, its cgroup scope, its
  // unit socket): a second agent on the same data dir or node id killed the first one's units (issue 8).
  const locks = await lockNode(config.dataDir, config.nodeId, runtime);
  try {
    return await startAgent(config, log, security, runtime, locks);
  } catch (err) {
    await Promise.all(locks.map((l) => l.release()));
    throw err;
  }
}

/**
 * The data dir (its swap, socket, incarnation) and the node id (its cgroup scope, which a start cleans by
 * killing what is in it) each belong to one agent on a host.
 */
async function lockNode(dataDir: string, nodeId: string, runtime: TierRuntime): Promise<HostLock[]> {
  const dir = await realpath(dataDir);
  const what = `agent ${nodeId}, data dir ${dir}`;
  const held: HostLock[] = [];
  try {
    held.push(await takeHostLock(`data-dir:${dir}`, what, runtime.timers));
    held.push(await takeHostLock(`node-id:${nodeId}`, what, runtime.timers));
  } catch (err) {
    await Promise.all(held.map((l) => l.release()));
    if (!(err instanceof HostLockBusy)) throw err;
    const by = err.holder ? `pid ${err.holder.pid} (${err.holder.what})` : 'another process (it did not say which)';
    throw new StartupError(err.key.startsWith('data-dir:')
      ? `data dir ${dir} is in use by ${by}: stop that agent first, or give this one another --data-dir`
      : `node id ${nodeId} is in use on this host by ${by}: two agents of one node id share its cgroup scope, and each start kills the units in it; give this agent another --node-id`);
  }
  return held;
}

async function startAgent(config: AgentConfig, log: Logger, security: TransportSecurity, runtime: TierRuntime, locks: HostLock[]): Promise<RunningAgent> {
  // Checked now: a store that takes no write was accepted, and every checkpoint failed afterwards (issue 8).
  await ensureWritable('store dir', config.storeDir);
  const logDir = join(config.dataDir, 'logs');
  await ensureDir('log dir', logDir);
  await chmod(logDir, 0o700);
  const incarnation = await bumpIncarnation(config.dataDir);

  const freezer = await detectFreezer(config.freezer, { scope: config.nodeId, time: runtime }).catch((err: unknown) => {
    // Only an explicit --freezer throws here ('auto' falls back): the operator's flag is what is wrong.
    throw new StartupError(`bad --freezer ${config.freezer}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  });
  const stale = await freezer.cleanupScope();
  if (stale > 0) log.warn({ groups: stale }, 'killed units left frozen or running by an earlier incarnation');
  log.info({ freezer: freezer.kind, detail: freezer.detail }, `freezer: ${freezer.kind}`);

  const swap = new SwapFile(join(config.dataDir, 'swap'));
  const memory = new PageMemory(
    {
      nodeId: config.nodeId,
      budgetBytes: config.memoryBudgetBytes,
      maxContainersPerJob: config.limits.maxContainersPerJob,
      maxPagesPerContainer: config.limits.maxPagesPerContainer,
      maxBatchWrites: config.limits.maxBatchWrites,
      maxBatchBytes: config.limits.maxBatchBytes,
    },
    swap,
  );
  let agentRef: NodeAgent | null = null;
  const supervisor = new UnitSupervisor({
    freezer,
    logDir,
    freezeTimeoutMs: config.freezeTimeoutMs,
    timers: runtime.timers,
    onExit: (info) => agentRef?.onUnitExit(info),
  });
  let metrics: AgentMetrics | null = null;
  const hub = new EventHub(incarnation, DEFAULT_HUB_LIMITS, () => runtime.clock.wallMs());
  const jobListeners: Array<() => void> = [];
  const agent = new NodeAgent({
    // Watch readers get every event; a job's change of state also wakes the cluster link (onJobChange).
    events: {
      emit: (e) => {
        hub.emit(e);
        if (e.kind === 'job') for (const l of jobListeners) l();
      },
    },
    config,
    runtime,
    incarnation,
    memory,
    supervisor,
    freezer,
    log,
    metrics: {
      checkpointCommitted: (f) => metrics?.checkpointCommitted(f),
      partWritten: (f) => metrics?.partWritten(f),
      partConfirmed: () => metrics?.partConfirmed(),
      checkpointFailed: (s) => metrics?.checkpointFailed(s),
      restored: (ms, fb) => metrics?.restored(ms, fb),
      unitExited: (c) => metrics?.unitExited(c),
      leaseLapsed: () => metrics?.leaseLapsed(),
    },
  });
  agentRef = agent;
  metrics = new AgentMetrics(() => agent.status());
  await agent.sweepOwnStore();

  const onBug = (err: unknown) => log.error({ err: err instanceof Error ? err.stack : String(err) }, 'request failed unexpectedly');
  const health = new HealthImplementation({ '': 'SERVING', 'gridckpt.v1.NodeAgentService': 'SERVING' });
  const server = new Server();
  const starts = new StartGens();
  server.addService(NodeAgentServiceService, guardService('NodeAgentService', agentServiceHandlers(agent, hub, starts, onBug), agentAccess(!config.ownsStore), security));
  health.addToServer(server);
  const port = await listening('gRPC', config.listen, () => bindServer(server, config.listen, serverCredentials(security)));
  const address = boundAddress(config.listen, port);

  const lifelines = new UnitLifelines();
  const unitServer = new Server();
  unitServer.addService(UnitServiceService, unitServiceHandlers(agent, lifelines, onBug));
  await removeStaleSocket(config.unitSocket);
  // Units are reached over a 0600 socket and authenticate with their job's token (unit-service.ts).
  await listening('unit API socket', config.unitSocket, () => bindServer(unitServer, `unix:${config.unitSocket}`, ServerCredentials.createInsecure()));
  await chmod(config.unitSocket, 0o600);

  const metricsListen = config.metricsListen;
  const metricsServer = metricsListen ? await listening('metrics', metricsListen, () => serveMetrics(metrics.registry, metricsListen)) : null;

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      health.setStatus('', 'NOT_SERVING');
      // Open Watch streams would hold the server's graceful shutdown forever.
      hub.close();
      await agent.shutdown();
      // Leave no cgroup behind: the scope is ours alone.
      await freezer.cleanupScope().catch((err: unknown) => log.warn({ err: String(err) }, 'cgroup cleanup failed'));
      lifelines.endAll();
      await Promise.all([
        stopServer(server, runtime.timers),
        stopServer(unitServer, runtime.timers),
        metricsServer ? new Promise<void>((r) => metricsServer.server.close(() => r())) : Promise.resolve(),
      ]);
      swap.close();
      await Promise.all(locks.map((l) => l.release()));
    })();
    return stopping;
  };
  return {
    agent,
    address,
    metricsUrl: metricsServer?.url ?? null,
    jobReports: () => starts.reports(agent.jobStates()),
    onJobChange: (l) => void jobListeners.push(l),
    stop,
  };
}
