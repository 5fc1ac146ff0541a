import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { toServiceError, unary } from '../../src/common/grpc-status.js';
import { GrpcCallError } from '../../src/common/grpc-call.js';
import { GridError } from '../../src/common/errors.js';

// Domain errors map to their status; a failed downstream call keeps its own
// status (a busy agent is UNAVAILABLE to the grid too, not INTERNAL) and is
// not reported as a bug; anything else is INTERNAL and is.

describe('grpc status mapping', () => {
  it('maps domain errors, passes downstream statuses through, and calls anything else internal', () => {
    expect(toServiceError(new GridError('unavailable', 'busy')).code).toBe(status.UNAVAILABLE);
    const down = toServiceError(new GrpcCallError(status.NOT_FOUND, 'unknown job', 'waitJob'));
    expect(down.code).toBe(status.NOT_FOUND);
    expect(down.details).toMatch(/waitJob: NOT_FOUND: unknown job/);
    expect(toServiceError(new Error('boom')).code).toBe(status.INTERNAL);
  });

  it('reports only unexpected errors as bugs', async () => {
    const bugs: unknown[] = [];
    const answer = (err: unknown) => new Promise<number | undefined>((resolve) => {
      unary(() => { throw err; }, (e) => bugs.push(e))({ request: {} }, (e) => resolve(e?.code));
    });
    expect(await answer(new GrpcCallError(status.UNAVAILABLE, 'down', 'restore'))).toBe(status.UNAVAILABLE);
    expect(await answer(new GridError('aborted', 'no'))).toBe(status.ABORTED);
    expect(bugs).toEqual([]);
    expect(await answer(new TypeError('x is undefined'))).toBe(status.INTERNAL);
    expect(bugs).toHaveLength(1);
  });
});
