// Errors that cross module edges. A GridError is an expected outcome or a
// rejected input (mapped to a gRPC status at the edge); anything else that is
// thrown is a bug or an unexpected environment failure.

export type GridErrorKind =
  | 'invalid-argument'
  | 'not-found'
  | 'already-exists'
  | 'failed-precondition'
  | 'resource-exhausted'
  | 'aborted'
  | 'data-loss'
  | 'unavailable'
  | 'deadline-exceeded'
  | 'permission-denied'
  | 'internal';

/**
 * The epoch a data-loss refusal found damaged, and where: a store directory
 * (an agent's answer) or a cluster id (a cluster's). It crosses gRPC as
 * trailing metadata, so a caller attributes the damage without parsing text.
 */
export interface Damaged {
  where: string;
  epoch: bigint;
}

export class GridError extends Error {
  readonly kind: GridErrorKind;
  constructor(kind: GridErrorKind, message: string, readonly damaged: Damaged | null = null) {
    super(message);
    this.name = 'GridError';
    this.kind = kind;
  }
}

export function dataLoss(message: string, damaged: Damaged | null): GridError {
  return new GridError('data-loss', message, damaged);
}

export function invalidArgument(message: string): GridError {
  return new GridError('invalid-argument', message);
}

export function notFound(message: string): GridError {
  return new GridError('not-found', message);
}

/** Crashes loudly on a broken invariant: a bug, never bad input. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`invariant broken: ${message}`);
}

/**
 * assert's failure alone, for checks on per-page hot paths: `if (bad)
 * invariantBroken(`...`)` builds its message only when it fails, where
 * assert's template-literal argument is built on every call (~70 ns: a
 * quarter of the cost of installing a restored page).
 */
export function invariantBroken(message: string): never {
  throw new Error(`invariant broken: ${message}`);
}
