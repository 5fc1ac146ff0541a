import { checkName } from '../common/names.js';
import { invalidArgument } from '../common/errors.js';
import type { AgentLimits } from './config.js';
import type { UnitSpec } from './units/unit-supervisor.js';
import type { StoredJobSpec } from '../store/index.js';

// A job as the node agent runs it: validated once on entry, stored in every
// epoch manifest so that a restore can restart the same units.

export interface JobSpec {
  jobId: string;
  units: UnitSpec[];
  checkpointIntervalMs: number;
  fullEvery: number;
}

const MAX_ARG_BYTES = 64 * 1024;

export function validateJobSpec(raw: JobSpec, limits: AgentLimits, defaultFullEvery: number): JobSpec {
  const jobId = checkName('job id', raw.jobId);
  if (raw.units.length === 0) throw invalidArgument(`job ${jobId} has no units`);
  if (raw.units.length > limits.maxUnitsPerJob) {
    throw invalidArgument(`job ${jobId} has ${raw.units.length} units; the limit is ${limits.maxUnitsPerJob}`);
  }
  const seen = new Set<string>();
  const units = raw.units.map((u) => {
    const unitId = checkName('unit id', u.unitId);
    if (seen.has(unitId)) throw invalidArgument(`job ${jobId} names unit ${JSON.stringify(unitId)} twice`);
    seen.add(unitId);
    if (u.command.length === 0) throw invalidArgument(`unit ${unitId} of job ${jobId} has an empty command`);
    const size = u.command.length + u.args.reduce((n, a) => n + a.length, 0);
    if (size > MAX_ARG_BYTES) throw invalidArgument(`unit ${unitId}: command line of ${size} bytes exceeds ${MAX_ARG_BYTES}`);
    for (const key of Object.keys(u.env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw invalidArgument(`unit ${unitId}: bad environment variable name ${JSON.stringify(key)}`);
      if (key.startsWith('GRIDCKPT_')) throw invalidArgument(`unit ${unitId}: environment variable ${key} is reserved for the agent`);
    }
    return { unitId, command: u.command, args: [...u.args], env: { ...u.env } };
  });
  const interval = raw.checkpointIntervalMs;
  if (!Number.isInteger(interval) || interval < 0 || (interval > 0 && interval < 10) || interval > 86_400_000) {
    throw invalidArgument(`job ${jobId}: bad checkpoint interval ${interval} ms (0 for none, else 10 ms to 1 day)`);
  }
  const fullEvery = raw.fullEvery === 0 ? defaultFullEvery : raw.fullEvery;
  if (!Number.isInteger(fullEvery) || fullEvery < 1 || fullEvery > 1_000_000) {
    throw invalidArgument(`job ${jobId}: bad full-every ${raw.fullEvery}`);
  }
  return { jobId, units, checkpointIntervalMs: interval, fullEvery };
}

/** Reads a job spec back from a manifest's layout (its shape checked on parse); values are validated again. */
export function jobSpecFromManifest(value: StoredJobSpec, limits: AgentLimits, defaultFullEvery: number): JobSpec {
  return validateJobSpec({ ...value, units: value.units.map((u) => ({ ...u })) }, limits, defaultFullEvery);
}
