import { checkHostPort } from '../common/host-port.js';
import { checkName } from '../common/names.js';
import { parseBytes } from '../common/sizes.js';
import { invalidArgument } from '../common/errors.js';

// Every bound of the node agent in one validated place (CONVENTIONS §6).

export type FreezerPreference = 'auto' | 'cgroup-v1' | 'cgroup-v2' | 'signal';

export interface AgentLimits {
  maxJobs: number;
  maxUnitsPerJob: number;
  maxContainersPerJob: number;
  maxPagesPerContainer: number;
  maxBatchWrites: number;
  maxBatchBytes: number;
  /** Unit requests that may wait behind a closed gate, per job. */
  maxGatedRequests: number;
  maxReadPages: number;
}

export interface AgentConfig {
  nodeId: string;
  dataDir: string;
  storeDir: string;
  /**
   * No cluster coordinator drives this agent: it alone writes and commits
   * epochs in its store, so it may sweep crash leftovers there at start.
   * Under a cluster the store is shared and only the coordinator sweeps.
   */
  ownsStore: boolean;
  listen: string;
  metricsListen: string | null;
  unitSocket: string;
  memoryBudgetBytes: number;
  freezer: FreezerPreference;
  freezeTimeoutMs: number;
  stopGraceMs: number;
  defaultFullEvery: number;
  limits: AgentLimits;
}

/** gRPC's default largest message a client accepts (grpc-js, grpcio, grpc-go: 4 MiB). */
const GRPC_DEFAULT_MAX_RECEIVE_BYTES = 4 * 1024 * 1024;
/**
 * The most pages one ReadContainer returns: its reply (the pages and a few
 * bytes of framing, a 1 KiB margin) must fit a default client's receive
 * limit, or a reader in any language gets RESOURCE_EXHAUSTED for a read the
 * agent allowed. 1,023 pages of 4 KiB (node_agent.proto states it).
 */
export const MAX_READ_PAGES = Math.floor((GRPC_DEFAULT_MAX_RECEIVE_BYTES - 1024) / 4096);

export const DEFAULT_LIMITS: AgentLimits = {
  maxJobs: 16,
  maxUnitsPerJob: 64,
  maxContainersPerJob: 64,
  maxPagesPerContainer: 1 << 20,
  maxBatchWrites: 256,
  maxBatchBytes: 1 << 20,
  maxGatedRequests: 4096,
  maxReadPages: MAX_READ_PAGES,
};

export const FREEZERS: readonly FreezerPreference[] = ['auto', 'cgroup-v1', 'cgroup-v2', 'signal'];

export interface AgentFlags {
  nodeId?: string | undefined;
  dataDir: string;
  storeDir?: string | undefined;
  listen?: string | undefined;
  metricsListen?: string | undefined;
  unitSocket?: string | undefined;
  memoryBudget?: string | undefined;
  freezer?: string | undefined;
  freezeTimeoutMs?: string | undefined;
  fullEvery?: string | undefined;
  /** Registered with a cluster coordinator (--cluster): the store is the cluster's. */
  underCluster?: boolean | undefined;
}


function positiveInt(what: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw invalidArgument(`bad ${what} ${JSON.stringify(text)}: expected an integer from ${min} to ${max}`);
  }
  return n;
}

export { checkHostPort };

export function agentConfigFromFlags(flags: AgentFlags): AgentConfig {
  const nodeId = checkName('node id', flags.nodeId ?? 'node-1');
  const budgetText = flags.memoryBudget ?? '256MiB';
  const budget = parseBytes(budgetText);
  if (budget === undefined || budget < 16 * 4096) {
    throw invalidArgument(`bad memory budget ${JSON.stringify(budgetText)}: expected a size of at least 64KiB, e.g. 256MiB`);
  }
  const freezer = flags.freezer ?? 'auto';
  if (!FREEZERS.includes(freezer as FreezerPreference)) {
    throw invalidArgument(`bad freezer ${JSON.stringify(freezer)}: expected one of ${FREEZERS.join(', ')}`);
  }
  const dataDir = flags.dataDir;
  return {
    nodeId,
    dataDir,
    storeDir: flags.storeDir ?? `${dataDir}/store`,
    ownsStore: flags.underCluster !== true,
    listen: checkHostPort('listen address', flags.listen ?? '127.0.0.1:0'),
    metricsListen: flags.metricsListen === undefined ? null : checkHostPort('metrics address', flags.metricsListen),
    unitSocket: flags.unitSocket ?? `${dataDir}/unit.sock`,
    memoryBudgetBytes: budget,
    freezer: freezer as FreezerPreference,
    freezeTimeoutMs: positiveInt('freeze timeout', flags.freezeTimeoutMs ?? '5000', 1, 600_000),
    stopGraceMs: 2000,
    defaultFullEvery: positiveInt('full-every', flags.fullEvery ?? '8', 1, 1_000_000),
    limits: { ...DEFAULT_LIMITS },
  };
}
