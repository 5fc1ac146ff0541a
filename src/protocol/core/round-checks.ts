// Input checks of the round core: the config (CONVENTIONS §6, every bound a
// named, validated maximum), a `start` (rejected with a GridError before
// anything changes), and the answers that come from the network (never
// asserted on: a malformed one is ignored and counted by the caller).

import { GridError, invalidArgument } from '../../common/errors.js';
import { checkName } from '../../common/names.js';
import type { DurableInput, PreparedInput, RoundConfig, StartInput } from './round-types.js';

/** Epochs travel as uint64. */
export const MAX_EPOCH = (1n << 64n) - 1n;
/** A ceiling for every count and duration in the config (about 11.5 days in ms). */
const MAX_CONFIG_VALUE = 1_000_000_000;

export const DEFAULT_ROUND_CONFIG: Readonly<RoundConfig> = Object.freeze({
  prepareTimeoutMs: 30_000,
  holdTimeoutMs: 60_000,
  commitTimeoutMs: 120_000,
  manifestTimeoutMs: 30_000,
  abortTimeoutMs: 10_000,
  maxParticipants: 4096,
  maxReasonChars: 512,
  maxIdChars: 128,
});

const CONFIG_KEYS: readonly (keyof RoundConfig)[] = [
  'prepareTimeoutMs', 'holdTimeoutMs', 'commitTimeoutMs', 'manifestTimeoutMs', 'abortTimeoutMs',
  'maxParticipants', 'maxReasonChars', 'maxIdChars',
];

export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  return String(value);
}

export function validateRoundConfig(config: RoundConfig): RoundConfig {
  for (const key of CONFIG_KEYS) {
    const v: unknown = config[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > MAX_CONFIG_VALUE) {
      throw invalidArgument(`bad round ${key} ${describeValue(v)}: expected an integer from 1 to ${MAX_CONFIG_VALUE}`);
    }
  }
  return { ...config };
}

export function failedPrecondition(message: string): GridError {
  return new GridError('failed-precondition', message);
}

function isId(value: unknown, maxChars: number): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= maxChars;
}

function isEpoch(value: unknown): value is bigint {
  return typeof value === 'bigint' && value >= 1n && value <= MAX_EPOCH;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Shape checks of a start that do not depend on the coordinator's state. */
export function checkStartShape(input: StartInput, jobId: string, config: RoundConfig): void {
  const bad = (what: string, value: unknown, want: string): GridError =>
    invalidArgument(`bad round ${what} ${describeValue(value)}: ${want}`);
  if (!isId(input.roundId, config.maxIdChars)) throw bad('id', input.roundId, `expected 1-${config.maxIdChars} characters`);
  if (input.jobId !== jobId) throw bad('job', input.jobId, `this coordinator runs the rounds of job ${JSON.stringify(jobId)}`);
  if (!isEpoch(input.epoch)) throw bad('epoch', input.epoch, `expected a bigint from 1 to ${MAX_EPOCH}`);
  if (typeof input.full !== 'boolean') throw bad('full flag', input.full, 'expected a boolean');
  if (input.holdAfterPrepare !== undefined && typeof input.holdAfterPrepare !== 'boolean') {
    throw bad('holdAfterPrepare flag', input.holdAfterPrepare, 'expected a boolean or nothing');
  }
  const parent = input.parentEpoch;
  if (parent === null) {
    if (!input.full) throw bad('parent epoch', parent, 'an incremental epoch needs a parent');
  } else if (!isEpoch(parent) || parent >= input.epoch) {
    throw bad('parent epoch', parent, `expected null or a bigint from 1 to ${input.epoch - 1n}`);
  }
  checkParticipants(input.participants, config);
}

function checkParticipants(participants: readonly string[], config: RoundConfig): void {
  if (!Array.isArray(participants) || participants.length === 0 || participants.length > config.maxParticipants) {
    throw invalidArgument(
      `bad round participants (${Array.isArray(participants) ? participants.length : describeValue(participants)}): ` +
        `expected 1 to ${config.maxParticipants} ids (a round over nobody would commit an epoch that holds nothing)`,
    );
  }
  const seen = new Set<string>();
  for (const p of participants) {
    if (!isId(p, config.maxIdChars)) {
      throw invalidArgument(`bad participant id ${describeValue(p)}: expected 1-${config.maxIdChars} characters`);
    }
    if (seen.has(p)) throw invalidArgument(`participant ${JSON.stringify(p)} is named twice`);
    seen.add(p);
  }
}

/** The job id this coordinator is built for: a safe name (it ends up in paths). */
export function checkJobId(jobId: string): string {
  return checkName('job', jobId);
}

/** A participant id and an epoch as the network may send them. */
export function isWellFormedAnswer(participant: unknown, epoch: unknown, config: RoundConfig): boolean {
  return isId(participant, config.maxIdChars) && isEpoch(epoch);
}

function isDigest(value: unknown, maxChars: number): value is string {
  return typeof value === 'string' && value.length <= maxChars;
}

export function isWellFormedPrepared(input: PreparedInput, config: RoundConfig): boolean {
  const readOnly = input.readOnly === undefined || isDigest(input.readOnly.digest, config.maxIdChars);
  return isCount(input.pages) && isCount(input.bytes) && isDigest(input.digest, config.maxIdChars) && readOnly;
}

export function isWellFormedDurable(input: DurableInput, config: RoundConfig): boolean {
  return isDigest(input.digest, config.maxIdChars);
}

/** Invariant 10: a part agrees with its PREPARED unless both digests are known and differ ('' is unknown). */
export function digestsAgree(prepared: string, durable: string): boolean {
  return prepared === '' || durable === '' || prepared === durable;
}

/** A reason from the network, cut to a bounded length. */
export function boundedReason(reason: unknown, maxChars: number): string {
  const text = typeof reason === 'string' && reason.length > 0 ? reason : 'no reason given';
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}…`;
}

/** At most `max` quoted names, then "and N more". */
export function nameList(names: readonly string[], max = 8): string {
  const shown = names.slice(0, max).map((n) => JSON.stringify(n)).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}
