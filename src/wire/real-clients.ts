import { realClock, realRng, realTimers } from '../runtime/real-ports.js';
import { INSECURE, type TransportSecurity } from '../common/transport-security.js';
import { AgentClient } from './agent-client.js';
import { ClusterClient } from './cluster-client.js';
import { GridClient } from './grid-client.js';
import type { ClientFactory, TierRuntime } from './clients.js';

// The real runtime: the real clock, timers and PRNG, and gRPC clients. Only the composition
// roots (run-*.ts, the CLI and the demo) call realRuntime (ARCHITECTURE §8).

/** Clients that dial with this process's own certificate (or plaintext, for an --insecure process). */
export function realClients(security: TransportSecurity = INSECURE): ClientFactory {
  return {
    agentClient: (address, timeoutMs, nodeId) => new AgentClient(address, timeoutMs, {}, security, nodeId),
    clusterClient: (address, timeoutMs, options) => new ClusterClient(address, timeoutMs, options, security),
    gridClient: (address, timeoutMs, options) => new GridClient(address, timeoutMs, options, security),
  };
}

export function realRuntime(security: TransportSecurity = INSECURE): TierRuntime {
  return { clock: realClock, timers: realTimers, rng: realRng, clients: realClients(security) };
}
