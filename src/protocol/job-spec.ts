import { invalidArgument } from '../common/errors.js';
import { checkName, quoteValue } from '../common/names.js';

// The job spec's one schema, shared by every tier and every input: a spec
// file read by the CLI (jobSpecFromJson: its shape, strictly, then its
// values), and a StartJob, SubmitJob, SubmitGridJob or Restore message
// (whose shape protobuf already fixed: checkJobSpec, its values). The grid,
// the cluster and the agent check the same rules, so a spec one tier takes
// is never refused by the tier below for a reason the first could have seen
// (only what a tier alone knows differs: the agent's unit limit, whether a
// command exists on its host). Every error names the field, as a path into
// the spec (`units[1].env.HOME`), and the bad value, cut short.
//
// Limits, and why:
// - a unit's command line and its environment are each at most 64 KiB:
//   Linux refuses one string over 128 KiB (MAX_ARG_STRLEN) and an exec
//   whose arguments and environment together pass a quarter of the stack
//   limit (E2BIG); a spec that fits here always execs;
// - no NUL in a command, an argument or an environment value: exec takes
//   NUL-terminated strings, so one cannot be passed (Node refuses it when
//   it spawns, after the units before it started);
// - environment names are POSIX names and GRIDCKPT_* are the agent's (the
//   unit API's contract: unit.proto).

export type UnitFailureAction = 'restore' | 'fail';

/**
 * What the job's coordinator does when a unit fails (exits non-zero or is
 * killed by a signal) while the job runs: restore the whole job from its last
 * committed epoch, at most maxRestarts times over the job's life, or fail the
 * job. See docs/cluster.md, "Restart policy".
 */
export interface RestartPolicy {
  onUnitFailure: UnitFailureAction;
  maxRestarts: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { onUnitFailure: 'restore', maxRestarts: 3 };
/** A job restored more often than this is failing, not unlucky. */
export const MAX_RESTARTS = 1_000;

export interface UnitSpecValue {
  unitId: string;
  command: string;
  args: string[];
  env: Record<string, string>;
}

export interface JobSpecValue {
  jobId: string;
  units: UnitSpecValue[];
  /** 0: no periodic checkpoints (or the coordinator's default). */
  checkpointIntervalMs: number;
  /** 0: the default. */
  fullEvery: number;
  /** null: the default (DEFAULT_RESTART_POLICY). */
  restartPolicy: RestartPolicy | null;
}

export interface JobSpecLimits {
  /** Units per job: the agent's own limit, or the grid's over all its clusters. */
  maxUnits: number;
}

export const MAX_COMMAND_LINE_BYTES = 64 * 1024;
export const MAX_ENV_BYTES = 64 * 1024;
export const MAX_INTERVAL_MS = 86_400_000;
export const MIN_INTERVAL_MS = 10;
export const MAX_FULL_EVERY = 1_000_000;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function bad(path: string, message: string): never {
  throw invalidArgument(`${path}: ${message}`);
}

/** UTF-8 length of a string (what exec and gRPC carry), without allocating. */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i += 1;
    } else n += 3;
  }
  return n;
}

function noNul(path: string, value: string): void {
  const at = value.indexOf('\0');
  if (at >= 0) bad(path, `contains a NUL byte (at ${at}), which exec cannot pass`);
}

/**
 * Checks a spec's values (its shape is right: from protobuf, or from
 * jobSpecFromJson) and returns it normalized: ids checked, arrays and maps
 * copied, the restart policy's defaults filled in where it is given.
 */
export function checkJobSpec(raw: JobSpecValue, limits: JobSpecLimits): JobSpecValue {
  const jobId = checkName('job id', raw.jobId);
  if (raw.units.length === 0) throw invalidArgument(`job ${jobId} has no units`);
  if (raw.units.length > limits.maxUnits) throw invalidArgument(`job ${jobId} has ${raw.units.length} units; the limit is ${limits.maxUnits}`);
  const seen = new Set<string>();
  const units = raw.units.map((u, i) => {
    const at = `units[${i}]`;
    const unitId = checkName('unit id', u.unitId);
    if (seen.has(unitId)) throw invalidArgument(`job ${jobId} names unit ${JSON.stringify(unitId)} twice`);
    seen.add(unitId);
    if (u.command.length === 0) throw invalidArgument(`unit ${unitId} of job ${jobId} has an empty command`);
    noNul(`${at}.command`, u.command);
    u.args.forEach((a, k) => noNul(`${at}.args[${k}]`, a));
    const line = utf8Bytes(u.command) + u.args.reduce((n, a) => n + utf8Bytes(a) + 1, 0);
    if (line > MAX_COMMAND_LINE_BYTES) bad(at, `unit ${unitId}: command line of ${line} bytes exceeds ${MAX_COMMAND_LINE_BYTES}`);
    let envBytes = 0;
    for (const [key, value] of Object.entries(u.env)) {
      if (!ENV_NAME.test(key)) bad(`${at}.env`, `unit ${unitId}: bad environment variable name ${quoteValue(key)}`);
      if (key.startsWith('GRIDCKPT_')) bad(`${at}.env.${key}`, `unit ${unitId}: environment variable ${key} is reserved for the agent`);
      noNul(`${at}.env.${key}`, value);
      envBytes += utf8Bytes(key) + utf8Bytes(value) + 2;
    }
    if (envBytes > MAX_ENV_BYTES) bad(`${at}.env`, `unit ${unitId}: environment of ${envBytes} bytes exceeds ${MAX_ENV_BYTES}`);
    return { unitId, command: u.command, args: [...u.args], env: { ...u.env } };
  });
  const interval = raw.checkpointIntervalMs;
  if (!Number.isInteger(interval) || interval < 0 || (interval > 0 && interval < MIN_INTERVAL_MS) || interval > MAX_INTERVAL_MS) {
    throw invalidArgument(`job ${jobId}: bad checkpoint interval ${interval} ms (checkpointIntervalMs: 0 for none or the default, else ${MIN_INTERVAL_MS} ms to 1 day)`);
  }
  if (!Number.isInteger(raw.fullEvery) || raw.fullEvery < 0 || raw.fullEvery > MAX_FULL_EVERY) {
    throw invalidArgument(`job ${jobId}: bad full-every ${raw.fullEvery} (fullEvery: 0 for the default, else 1 to ${MAX_FULL_EVERY})`);
  }
  return { jobId, units, checkpointIntervalMs: interval, fullEvery: raw.fullEvery, restartPolicy: checkRestartPolicy(raw.restartPolicy) };
}

function checkRestartPolicy(p: RestartPolicy | null): RestartPolicy | null {
  if (p === null) return null;
  if (p.onUnitFailure !== 'restore' && p.onUnitFailure !== 'fail') {
    bad('restartPolicy.onUnitFailure', `${quoteValue(String(p.onUnitFailure))} is neither "restore" nor "fail"`);
  }
  if (!Number.isInteger(p.maxRestarts) || p.maxRestarts < 0 || p.maxRestarts > MAX_RESTARTS) {
    bad('restartPolicy.maxRestarts', `${String(p.maxRestarts)} is not an integer from 0 to ${MAX_RESTARTS}`);
  }
  return { onUnitFailure: p.onUnitFailure, maxRestarts: p.maxRestarts };
}

/** The policy a spec's wire form names: on_unit_failure "" means the default (restore), as does an absent message. */
export function restartPolicyFromWire(p: { onUnitFailure: string; maxRestarts: number } | undefined): RestartPolicy | null {
  if (p === undefined) return null;
  const action = p.onUnitFailure === '' ? DEFAULT_RESTART_POLICY.onUnitFailure : p.onUnitFailure;
  return { onUnitFailure: action as UnitFailureAction, maxRestarts: p.maxRestarts };
}

// ---- a spec file: its shape, strictly ----

type Json = unknown;

const JOB_FIELDS = ['jobId', 'units', 'checkpointIntervalMs', 'fullEvery', 'restartPolicy'] as const;
const UNIT_FIELDS = ['unitId', 'command', 'args', 'env'] as const;
const POLICY_FIELDS = ['onUnitFailure', 'maxRestarts'] as const;

function objectAt(path: string, v: Json, fields: readonly string[]): Record<string, Json> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(path || 'job spec', `expected an object, got ${kindOf(v)}`);
  const o = v as Record<string, Json>;
  for (const key of Object.keys(o)) {
    if (fields.includes(key)) continue;
    const near = fields.find((f) => f.toLowerCase().startsWith(key.toLowerCase()) || key.toLowerCase().startsWith(f.toLowerCase()));
    bad(path === '' ? key : `${path}.${key}`, `unknown field${near ? ` (did you mean ${near}?)` : ''}; expected ${fields.join(', ')}`);
  }
  return o;
}

function kindOf(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${quoteValue(String(v))}`;
}

function stringAt(path: string, v: Json, optional: string | null = null): string {
  if (v === undefined && optional !== null) return optional;
  if (typeof v !== 'string') bad(path, `expected a string, got ${v === undefined ? 'nothing (it is required)' : kindOf(v)}`);
  return v;
}

function intAt(path: string, v: Json, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(path, `expected an integer >= 0, got ${kindOf(v)}`);
  return v;
}

/**
 * A job spec from JSON (a spec file): every field typed, none unknown (a
 * typo is named, not ignored), `args` and `env` optional (empty), the numbers
 * optional (0: the defaults). Values are checked by checkJobSpec after.
 */
export function jobSpecFromJson(value: Json): JobSpecValue {
  const o = objectAt('', value, JOB_FIELDS);
  const jobId = stringAt('jobId', o['jobId']);
  if (!Array.isArray(o['units'])) bad('units', `expected an array of units, got ${o['units'] === undefined ? 'nothing (it is required)' : kindOf(o['units'])}`);
  const units = (o['units'] as Json[]).map((raw, i): UnitSpecValue => {
    const at = `units[${i}]`;
    const u = objectAt(at, raw, UNIT_FIELDS);
    const args = u['args'] ?? [];
    if (!Array.isArray(args)) bad(`${at}.args`, `expected an array of strings, got ${kindOf(args)}`);
    const envRaw = u['env'] ?? {};
    if (typeof envRaw !== 'object' || envRaw === null || Array.isArray(envRaw)) bad(`${at}.env`, `expected an object of strings, got ${kindOf(envRaw)}`);
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(envRaw as Record<string, Json>)) env[k] = stringAt(`${at}.env.${k}`, v);
    return {
      unitId: stringAt(`${at}.unitId`, u['unitId']),
      command: stringAt(`${at}.command`, u['command']),
      args: (args as Json[]).map((a, k) => stringAt(`${at}.args[${k}]`, a)),
      env,
    };
  });
  let restartPolicy: RestartPolicy | null = null;
  if (o['restartPolicy'] !== undefined) {
    const p = objectAt('restartPolicy', o['restartPolicy'], POLICY_FIELDS);
    restartPolicy = {
      onUnitFailure: stringAt('restartPolicy.onUnitFailure', p['onUnitFailure'], DEFAULT_RESTART_POLICY.onUnitFailure) as UnitFailureAction,
      maxRestarts: intAt('restartPolicy.maxRestarts', p['maxRestarts'], DEFAULT_RESTART_POLICY.maxRestarts),
    };
  }
  return {
    jobId, units,
    checkpointIntervalMs: intAt('checkpointIntervalMs', o['checkpointIntervalMs'], 0),
    fullEvery: intAt('fullEvery', o['fullEvery'], 0),
    restartPolicy,
  };
}
