import { describe, expect, it } from 'vitest';
import { Server, ServerCredentials, status, type ServerWritableStream } from '@grpc/grpc-js';
import { ClusterServiceService } from '../../src/gen/gridckpt/v1/cluster.js';
import { bindServer, stopServer } from '../../src/common/grpc-server.js';
import { realTimers } from '../../src/runtime/real-ports.js';
import { EventHub, type HubLimits } from '../../src/runtime/event-hub.js';
import { serveWatch, type WatchRequestPb, type WatchResponsePb } from '../../src/runtime/watch-stream.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import type { WatchEvent } from '../../src/gen/gridckpt/v1/common.js';

// The Watch RPC over real loopback gRPC: a hub behind a real server, read by
// the real typed client. Every wait below is on an event (subscribed, a
// message, a status, the server seeing the call end), never a sleep.

interface Served {
  hub: EventHub;
  client: ClusterClient;
  /** Resolves when the server has seen the n-th Watch call end (cancel, deadline or disconnect). */
  callEnded(n: number): Promise<void>;
  stop(): Promise<void>;
}

async function serve(limits: HubLimits = { recentEvents: 64, subscriberQueue: 64, maxSubscribers: 4 }): Promise<Served> {
  const hub = new EventHub(3n, limits, () => Date.now());
  const handler = serveWatch(hub);
  let ended = 0;
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const server = new Server();
  // Only Watch is served: the others answer UNIMPLEMENTED.
  server.addService(ClusterServiceService, {
    watch: (call: ServerWritableStream<WatchRequestPb, WatchResponsePb>) => {
      handler(call);
      // After serveWatch's own listener: the hub has dropped the reader by now.
      call.once('cancelled', () => {
        ended += 1;
        for (const w of waiters.filter((x) => x.n <= ended)) w.resolve();
      });
    },
  } as never);
  const port = await bindServer(server, '127.0.0.1:0', ServerCredentials.createInsecure());
  const client = new ClusterClient(`127.0.0.1:${port}`);
  return {
    hub, client,
    callEnded: (n) => (ended >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    async stop() {
      client.close();
      hub.close();
      await stopServer(server, realTimers);
    },
  };
}

async function take(it: AsyncIterator<WatchEvent>, n: number): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  while (out.length < n) {
    const r = await it.next();
    if (r.done) throw new Error(`stream ended after ${out.length} of ${n} events`);
    out.push(r.value);
  }
  return out;
}

const job = (jobId: string, detail: string) => ({ kind: 'job' as const, jobId, subject: 'c1', from: 'running', to: 'completed', detail });

describe('Watch over loopback gRPC', () => {
  it('replays the recent events that pass the filter, then streams live ones in order', async () => {
    const s = await serve();
    try {
      for (let i = 1; i <= 6; i++) s.hub.emit(job(i % 2 ? 'a' : 'b', String(i)));
      const w = s.client.watch({ jobId: 'a', replayRecent: 2 });
      await w.subscribed;
      s.hub.emit(job('b', '7'));
      s.hub.emit(job('a', '9'));
      const events = await take(w.events()[Symbol.asyncIterator](), 3);
      expect(events.map((e) => e.detail)).toEqual(['3', '5', '9']);
      expect(events[2]).toMatchObject({ seq: 8n, incarnation: 3n, kind: 'job', jobId: 'a', subject: 'c1', from: 'running', to: 'completed', epoch: 0n });
      expect(events[2]!.atUnixMs).toBeGreaterThan(0n);
      w.cancel();
      await s.callEnded(1);
      expect(s.hub.subscribers).toBe(0);
    } finally {
      await s.stop();
    }
  });

  it('a reader that reads keeps up with a busy service; one that stopped reading is cut off with RESOURCE_EXHAUSTED', async () => {
    const s = await serve({ recentEvents: 64, subscriberQueue: 256, maxSubscribers: 4 });
    try {
      const detail = 'x'.repeat(200);
      // A busy service: an event every turn of the event loop, thousands a second (real ones emit a few).
      const produce = async (count: number, stop: () => boolean) => {
        let emitted = 0;
        while (emitted < count && !stop()) {
          s.hub.emit(job('a', detail));
          emitted += 1;
          await new Promise((r) => setImmediate(r));
        }
        return emitted;
      };
      const reading = s.client.watch();
      await reading.subscribed;
      const it = reading.events()[Symbol.asyncIterator]();
      const [emitted, got] = await Promise.all([produce(4_000, () => false), take(it, 4_000)]);
      expect(emitted).toBe(4_000);
      expect(got.map((e) => e.seq)).toEqual(got.map((_, i) => BigInt(i + 1)));
      expect(s.hub.cutOff).toBe(0);
      reading.cancel();
      await s.callEnded(1);

      const stalled = s.client.watch();
      await stalled.subscribed;
      const first = s.hub.recent().at(-1)!.seq + 1n;
      // Nobody reads: grpc-js stops taking from the socket, HTTP/2 flow control stops the server's
      // writes, and the backlog can only pile up in the hub's queue, which is bounded.
      const sent = await produce(1_000_000, () => s.hub.cutOff > 0);
      expect(s.hub.cutOff).toBe(1);
      expect(s.hub.subscribers).toBe(0);
      // Reading now gets some of what was already on its way, in order, and then the status
      // (grpc-js reports a failed status as soon as it arrives, dropping what it had not handed over).
      const seqs: bigint[] = [];
      const err = await (async () => {
        try {
          for await (const e of stalled.events()) seqs.push(e.seq);
        } catch (e) {
          return e as { code: number; message: string };
        }
        return null;
      })();
      expect(err?.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(err?.message).toMatch(/too far behind: 256 events waiting \(limit 256\)/);
      // Bounded: the transport's windows and the hub's queue, not everything the service emitted.
      expect(sent).toBeLessThan(5_000);
      expect(seqs.length).toBeLessThan(sent);
      expect(seqs).toEqual(seqs.map((_, i) => first + BigInt(i)));
    } finally {
      await s.stop();
    }
  });

  it('a deadline ends the reader on both sides', async () => {
    const s = await serve();
    try {
      const w = s.client.watch({ deadlineUnixMs: Date.now() + 300 });
      await w.subscribed;
      await expect((async () => { for await (const _ of w.events()) { /* none come */ } })()).rejects.toMatchObject({ code: status.DEADLINE_EXCEEDED });
      await s.callEnded(1);
      expect(s.hub.subscribers).toBe(0);
    } finally {
      await s.stop();
    }
  });

  it('refuses a bad job id and readers beyond the limit, naming them', async () => {
    const s = await serve({ recentEvents: 8, subscriberQueue: 8, maxSubscribers: 1 });
    try {
      await expect(s.client.watch({ jobId: '../x' }).subscribed).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, message: expect.stringMatching(/bad job id "\.\.\/x"/) as unknown });
      const first = s.client.watch();
      await first.subscribed;
      await expect(s.client.watch().subscribed).rejects.toMatchObject({ code: status.RESOURCE_EXHAUSTED, message: expect.stringMatching(/already 1 watchers/) as unknown });
      first.cancel();
    } finally {
      await s.stop();
    }
  });

  it('ends every stream cleanly when the service stops, so the server can shut down', async () => {
    const s = await serve();
    const w = s.client.watch();
    await w.subscribed;
    s.hub.emit(job('a', 'last'));
    const seen: string[] = [];
    const read = (async () => { for await (const e of w.events()) seen.push(e.detail); })();
    await s.stop();
    await read;
    expect(seen).toEqual(['last']);
  });
});
