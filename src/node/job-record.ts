import type { JobSpec } from './job-spec.js';
import { RequestGate } from './request-gate.js';

// What the agent keeps per job between requests.

export type JobState = 'running' | 'completed' | 'failed' | 'stopped' | 'restoring';

export interface JobRecord {
  spec: JobSpec;
  state: JobState;
  /** unitId → secret the unit proves its identity with. */
  tokens: Map<string, string>;
  gate: RequestGate;
  /** The committed epoch the next incremental epoch builds on. */
  parentEpoch: bigint | null;
  /** Highest epoch number ever used for this job (committed or not). */
  highestEpoch: bigint;
  epochsSinceFull: number;
  checkpointInFlight: Promise<unknown> | null;
  /** Staging memory kept warm between checkpoints (see checkpoint-runner). */
  staging: Uint8Array | null;
  timer: NodeJS.Timeout | null;
  committed: number;
  failed: number;
  lastError: string;
  /** Resolved when every unit has exited. */
  exitWaiters: Array<() => void>;
}

export function newJobRecord(spec: JobSpec, maxGatedRequests: number): JobRecord {
  return {
    spec,
    state: 'running',
    tokens: new Map(),
    gate: new RequestGate(maxGatedRequests),
    parentEpoch: null,
    highestEpoch: 0n,
    epochsSinceFull: 0,
    checkpointInFlight: null,
    staging: null,
    timer: null,
    committed: 0,
    failed: 0,
    lastError: '',
    exitWaiters: [],
  };
}
