import type { ChannelOptions } from '@grpc/grpc-js';
import type { Runtime } from '../runtime/runtime.js';
import type { AgentClient } from './agent-client.js';
import type { ClusterClient } from './cluster-client.js';
import type { GridClient } from './grid-client.js';

// How a shell reaches its peers: it asks the runtime's factory for a typed
// client instead of constructing one (CONVENTIONS §3: transports are ports).
// The real factory is in real-clients.ts, used only by the composition roots.

export interface ClientFactory {
  /** nodeId: the node the caller means to reach there (with mTLS, its certificate must be that node's). */
  agentClient(address: string, timeoutMs?: number, nodeId?: string): AgentClient;
  clusterClient(address: string, timeoutMs?: number, options?: ChannelOptions): ClusterClient;
  gridClient(address: string, timeoutMs?: number, options?: ChannelOptions): GridClient;
}

/** The runtime a tier's shells take: the ports and the typed clients. */
export type TierRuntime = Runtime<ClientFactory>;
