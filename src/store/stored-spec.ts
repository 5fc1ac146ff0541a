import type { StoredJobSpec } from './manifest.js';

/**
 * The job spec as the store, the job table and the catalog keep it: a domain
 * record built field by field, so a wire message (and whatever fields a later
 * proto adds) is never persisted as is.
 */
export function storedSpecOf(s: StoredJobSpec): StoredJobSpec {
  return {
    jobId: s.jobId,
    units: s.units.map((u) => ({ unitId: u.unitId, command: u.command, args: [...u.args], env: { ...u.env } })),
    checkpointIntervalMs: s.checkpointIntervalMs,
    fullEvery: s.fullEvery,
  };
}
