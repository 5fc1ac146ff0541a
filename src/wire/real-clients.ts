import { realClock, realRng, realTimers } from '../runtime/real-ports.js';
import { AgentClient } from './agent-client.js';
import { ClusterClient } from './cluster-client.js';
import { GridClient } from './grid-client.js';
import type { ClientFactory, TierRuntime } from './clients.js';

// The real runtime: the real clock, timers and PRNG, and gRPC clients. Only the composition
// roots (run-*.ts, the CLI and the demo) call realRuntime (ARCHITECTURE §8).

export const realClients: ClientFactory = {
  agentClient: (address, timeoutMs) => new AgentClient(address, timeoutMs),
  clusterClient: (address, timeoutMs, options) => new ClusterClient(address, timeoutMs, options),
  gridClient: (address, timeoutMs, options) => new GridClient(address, timeoutMs, options),
};

export function realRuntime(): TierRuntime {
  return { clock: realClock, timers: realTimers, rng: realRng, clients: realClients };
}
