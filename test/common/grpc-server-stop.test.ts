// stopServer (src/common/grpc-server.ts): a client that stops reading a
// stream must not hold a service's shutdown forever. Real gRPC on loopback:
// the server writes until HTTP/2 flow control pushes back, the client never
// reads, and the stop still ends after its grace period.

import { Server, ServerCredentials, credentials, makeGenericClientConstructor, type ServerWritableStream } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { bindServer, stopServer } from '../../src/common/grpc-server.js';
import { realTimers } from '../../src/runtime/real-ports.js';

const identity = (b: Buffer): Buffer => b;
const FLOOD = {
  flood: { path: '/test.Flood/Flood', requestStream: false, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

describe('stopServer', () => {
  it('a stream whose client stopped reading: the graceful stop gives up after the grace period and cuts it', async () => {
    const server = new Server();
    let backpressured!: () => void;
    const full = new Promise<void>((resolve) => { backpressured = resolve; });
    server.addService(FLOOD, {
      flood: (call: ServerWritableStream<Buffer, Buffer>) => {
        const chunk = Buffer.alloc(256 * 1024, 7);
        while (call.write(chunk)) { /* until the client's window and the buffers are full */ }
        backpressured();
      },
    });
    const port = await bindServer(server, '127.0.0.1:0', ServerCredentials.createInsecure());
    const Client = makeGenericClientConstructor(FLOOD, 'Flood');
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    const stream = (client as unknown as { flood(req: Buffer): NodeJS.ReadableStream }).flood(Buffer.alloc(0));
    stream.pause(); // never read
    stream.on('error', () => undefined); // cut by the forced stop
    await full;
    let stopped = false;
    const stop = stopServer(server, realTimers, 300).then(() => { stopped = true; });
    // Graceful first: the stream is still open well within the grace period.
    await new Promise((r) => realTimers.setTimer(() => r(undefined), 100));
    expect(stopped).toBe(false);
    await stop;
    expect(stopped).toBe(true);
    client.close();
  });

  it('with nothing in flight it stops at once, and no timer is left behind', async () => {
    const server = new Server();
    await bindServer(server, '127.0.0.1:0', ServerCredentials.createInsecure());
    const set: unknown[] = [];
    const cleared: unknown[] = [];
    const timers = { setTimer: (cb: () => void, ms: number) => { const h = realTimers.setTimer(cb, ms); set.push(h); return h; }, clearTimer: (h: unknown) => { cleared.push(h); realTimers.clearTimer(h); } };
    await stopServer(server, timers, 60_000);
    expect(cleared).toEqual(set);
  });
});
