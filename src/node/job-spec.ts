import type { AgentLimits } from './config.js';
import type { UnitSpec } from './units/unit-supervisor.js';
import type { StoredJobSpec } from '../store/index.js';
import { checkJobSpec } from '../protocol/job-spec.js';

// A job as the node agent runs it: validated once on entry, against the spec
// schema every tier shares (src/protocol/job-spec.ts) with this agent's
// limits, and stored in every epoch manifest so that a restore can restart
// the same units. (The restart policy is its coordinator's business: the
// agent reports a unit's failure, it does not act on it.)

export interface JobSpec {
  jobId: string;
  units: UnitSpec[];
  checkpointIntervalMs: number;
  fullEvery: number;
}

export function validateJobSpec(raw: JobSpec, limits: AgentLimits, defaultFullEvery: number): JobSpec {
  const spec = checkJobSpec({ ...raw, restartPolicy: null }, { maxUnits: limits.maxUnitsPerJob });
  return { jobId: spec.jobId, units: spec.units, checkpointIntervalMs: spec.checkpointIntervalMs, fullEvery: spec.fullEvery === 0 ? defaultFullEvery : spec.fullEvery };
}

/** Reads a job spec back from a manifest's layout (its shape checked on parse); values are validated again. */
export function jobSpecFromManifest(value: StoredJobSpec, limits: AgentLimits, defaultFullEvery: number): JobSpec {
  return validateJobSpec({ ...value, units: value.units.map((u) => ({ ...u })) }, limits, defaultFullEvery);
}
