import type { ServerCredentials, Server } from '@grpc/grpc-js';

/** The runtime's timers, as far as a stop needs them (common sits below src/runtime: the shape, not the import). */
export interface StopTimers {
  setTimer(callback: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
}

// Binding and stopping a gRPC server, the same way for every service.

/** Binds `listen` (host:port, port 0 for an ephemeral one, or unix:path); returns the port. creds: mTLS for the tiers' services (transport-security.ts). */
export function bindServer(server: Server, listen: string, creds: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(listen, creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** host:port as clients should dial it, once the port is known. */
export function boundAddress(listen: string, port: number): string {
  return `${listen.slice(0, listen.lastIndexOf(':'))}:${port}`;
}

/** How long a stop waits for calls in flight before it cuts them. */
export const STOP_GRACE_MS = 5_000;

/**
 * Graceful, then forced: calls in flight get `graceMs` to end, then every
 * connection is closed. A client that stopped reading a stream (its HTTP/2
 * window full) would otherwise hold a graceful shutdown forever, however
 * the service ends its streams.
 */
export function stopServer(server: Server, timers: StopTimers, graceMs = STOP_GRACE_MS): Promise<void> {
  return new Promise((resolve) => {
    const force = timers.setTimer(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      timers.clearTimer(force);
      resolve();
    });
  });
}
