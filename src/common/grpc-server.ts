import type { ServerCredentials, Server } from '@grpc/grpc-js';

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

export function stopServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.tryShutdown(() => resolve()));
}
