import { describe, expect, it } from 'vitest';
import { credentials, makeGenericClientConstructor, Server, ServerCredentials, status, type Client } from '@grpc/grpc-js';
import { toServiceError, unary } from '../../src/common/grpc-status.js';
import { callUnary, GrpcCallError } from '../../src/common/grpc-call.js';
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

describe('a data-loss refusal names what it found damaged', () => {
  it('carries the damaged store and epoch in its trailers over a real gRPC call, and none when it names none', async () => {
    const raw = (b: Buffer) => b;
    const method = { path: '/gridckpt.test.Damage/Fail', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw };
    const errors = [
      new GridError('data-loss', 'epoch 7 is bad', { where: '/tmp/a store/é', epoch: 7n }),
      new GridError('not-found', 'no epoch 9'),
    ];
    const server = new Server();
    server.addService({ fail: method }, { fail: unary(() => { throw errors.shift(); }) });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const Ctor = makeGenericClientConstructor({ fail: method }, 'Damage');
    const client = new Ctor(`127.0.0.1:${port}`, credentials.createInsecure()) as Client;
    try {
      const call = () => callUnary<Buffer, Buffer>(client, 'fail', Buffer.alloc(0), new Date(Date.now() + 10_000)).then(() => null, (e: unknown) => e as GrpcCallError);
      const first = await call();
      expect(first?.code).toBe(status.DATA_LOSS);
      expect(first?.damaged).toEqual({ where: '/tmp/a store/é', epoch: 7n });
      const second = await call();
      expect(second?.code).toBe(status.NOT_FOUND);
      expect(second?.damaged).toBeNull();
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
