import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { GridError, type Damaged, type GridErrorKind } from './errors.js';

// The one place where domain errors become gRPC statuses, and back.

/** Trailing metadata of a data-loss refusal: what was found damaged (errors.ts, Damaged). */
const DAMAGED_WHERE = 'gridckpt-damaged-where';
const DAMAGED_EPOCH = 'gridckpt-damaged-epoch';

/** The damage a refusal's trailers name; null when they name none (or not in the right shape). */
export function damagedOf(metadata: Metadata | undefined): Damaged | null {
  const where = metadata?.get(DAMAGED_WHERE)[0];
  const epoch = metadata?.get(DAMAGED_EPOCH)[0];
  if (typeof where !== 'string' || typeof epoch !== 'string' || !/^\d{1,20}$/.test(epoch)) return null;
  try {
    return { where: decodeURIComponent(where), epoch: BigInt(epoch) };
  } catch {
    return null;
  }
}

const CODES: Record<GridErrorKind, status> = {
  'invalid-argument': status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  'already-exists': status.ALREADY_EXISTS,
  'failed-precondition': status.FAILED_PRECONDITION,
  'resource-exhausted': status.RESOURCE_EXHAUSTED,
  aborted: status.ABORTED,
  'data-loss': status.DATA_LOSS,
  unavailable: status.UNAVAILABLE,
  'deadline-exceeded': status.DEADLINE_EXCEEDED,
  internal: status.INTERNAL,
  'permission-denied': status.PERMISSION_DENIED,
};

/** A call this service made downstream failed (grpc-call's GrpcCallError): its status is the answer's. */
function downstreamCode(err: unknown): number | null {
  const e = err as { name?: unknown; code?: unknown } | null;
  return e !== null && typeof e === 'object' && e.name === 'GrpcCallError' && typeof e.code === 'number' ? e.code : null;
}

/**
 * A status's details are cut to this many characters: an error that echoes a
 * caller's value (an id a megabyte long) must not send it back whole. Values
 * are quoted short where they are named (names.ts, quoteValue); this is the
 * backstop for every other message.
 */
export const MAX_DETAILS_CHARS = 2_048;

export function cutDetails(details: string): string {
  if (details.length <= MAX_DETAILS_CHARS) return details;
  return `${details.slice(0, MAX_DETAILS_CHARS)}… (${details.length} characters in all)`;
}

export function toServiceError(err: unknown): Partial<ServiceError> {
  const e = toServiceErrorWhole(err);
  return e.details === undefined ? e : { ...e, details: cutDetails(e.details) };
}

function toServiceErrorWhole(err: unknown): Partial<ServiceError> {
  if (err instanceof GridError) {
    const metadata = new Metadata();
    if (err.damaged) {
      metadata.set(DAMAGED_WHERE, encodeURIComponent(err.damaged.where));
      metadata.set(DAMAGED_EPOCH, String(err.damaged.epoch));
    }
    return { code: CODES[err.kind], details: err.message, metadata };
  }
  const downstream = downstreamCode(err);
  if (downstream !== null) return { code: downstream, details: (err as Error).message, metadata: new Metadata() };
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: message, metadata: new Metadata() };
}

export function statusName(code: number | undefined): string {
  if (code === undefined) return 'UNKNOWN';
  return status[code] ?? String(code);
}

/** Adapts an async domain handler to a grpc-js unary handler. */
export function unary<Req, Res>(
  handler: (req: Req, call: { getDeadline?(): Date | number }) => Promise<Res> | Res,
  onError?: (err: unknown) => void,
): (
  call: { request: Req; getDeadline?(): Date | number },
  callback: (err: Partial<ServiceError> | null, value?: Res) => void,
) => void {
  return (call, callback) => {
    Promise.resolve()
      .then(() => handler(call.request, call))
      .then(
        (value) => callback(null, value),
        (err: unknown) => {
          if (!(err instanceof GridError) && downstreamCode(err) === null) onError?.(err);
          callback(toServiceError(err));
        },
      );
  };
}
