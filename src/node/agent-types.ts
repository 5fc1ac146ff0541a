import type { Logger } from '../common/log.js';
import type { AgentConfig } from './config.js';
import type { JobSpec } from './job-spec.js';
import type { PageMemory, ContainerInfo, MemoryStats } from './memory/page-memory.js';
import type { UnitSupervisor, UnitInfo } from './units/unit-supervisor.js';
import type { Freezer } from './units/freezer.js';
import type { AgentMetricsSink } from './metrics-sink.js';
import type { EventSink } from './agent-events.js';
import type { TierRuntime } from '../wire/clients.js';

// The node agent's types: what it is built from, what it shows of a job, how a job is started.

export interface UnitIdentity {
  jobId: string;
  unitId: string;
  token: string;
}

export interface JobView {
  spec: JobSpec;
  state: AgentJobState;
  units: UnitInfo[];
  lastEpoch: bigint | null;
  containers: ContainerInfo[];
  committed: number;
  failed: number;
  lastError: string;
}

export interface AgentStatus {
  nodeId: string;
  incarnation: bigint;
  freezer: Freezer['kind'];
  freezerDetail: string;
  memory: MemoryStats;
  jobs: JobView[];
}

export interface AgentDeps {
  config: AgentConfig;
  /** Clock and timers for the agent, its leases and its checkpoint and restore runners. */
  runtime: TierRuntime;
  incarnation: bigint;
  memory: PageMemory;
  supervisor: UnitSupervisor;
  freezer: Freezer;
  log: Logger;
  metrics: AgentMetricsSink;
  /** Watch readers' hub; none in tests that need no events. */
  events?: EventSink;
}

/** How a coordinator starts a job here (see StartJobRequest). */
export interface StartOptions {
  leaseBound?: boolean;
  fresh?: boolean;
  /** The call's deadline (wall-clock ms): a start that reaches the core after it is refused. */
  deadline?: number;
}

export type AgentJobState = 'running' | 'completed' | 'failed' | 'stopped' | 'restoring' | 'fenced';
