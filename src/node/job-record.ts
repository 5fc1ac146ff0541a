import type { JobSpec } from './job-spec.js';
import { RequestGate } from './request-gate.js';
import type { Snapshot, SnapshotEntry } from './memory/page-memory.js';
import type { Repeating } from '../runtime/timers.js';

export interface StagedEpoch {
  epoch: bigint;
  parentEpoch: bigint | null;
  snapshot: Snapshot;
}

// What the agent keeps per job between requests.

export type JobState = 'running' | 'completed' | 'failed' | 'stopped' | 'restoring' | 'fenced';

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
  /** Coordinated rounds: prepared (staged, not yet written) for an epoch. */
  staged: StagedEpoch | null;
  /** Coordinated rounds: written as our part, manifest not yet confirmed. */
  unconfirmed: { epoch: bigint; entries: SnapshotEntry[] } | null;
  /** The newest coordinator fence seen, per coordinator (cluster/node). */
  fences: Map<string, bigint>;
  /** Periodic local checkpoints (spec.checkpointIntervalMs). */
  timer: Repeating | null;
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
    staged: null,
    unconfirmed: null,
    fences: new Map(),
    timer: null,
    committed: 0,
    failed: 0,
    lastError: '',
    exitWaiters: [],
  };
}
