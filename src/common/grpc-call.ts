import { Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import type { Damaged } from './errors.js';
import { damagedOf, statusName } from './grpc-status.js';

// One promise-returning unary call with a deadline, for every client here.

export class GrpcCallError extends Error {
  /** What a data-loss refusal found damaged, from its trailers (grpc-status.ts). */
  readonly damaged: Damaged | null;
  constructor(readonly code: number, readonly details: string, method: string, metadata?: Metadata) {
    super(`${method}: ${statusName(code)}: ${details}`);
    this.name = 'GrpcCallError';
    this.damaged = damagedOf(metadata);
  }
}

type Unary<Req, Res> = (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: Res) => void) => void;

/** deadline: wall-clock time, as gRPC sends it on the wire (the caller reads the clock). */
export function callUnary<Req, Res>(client: Client, method: string, req: Req, deadline: Date): Promise<Res> {
  const fn = (client as unknown as Record<string, Unary<Req, Res>>)[method]!.bind(client);
  return new Promise((resolve, reject) => {
    fn(req, new Metadata(), { deadline }, (err, res) => {
      if (err) reject(new GrpcCallError(err.code, err.details, method, err.metadata));
      else resolve(res);
    });
  });
}

/**
 * For membership links (heartbeats): after the peer restarts, reconnect
 * within a heartbeat or so instead of grpc-js's default 1 s+ backoff, so a
 * member re-registers well within its lease.
 */
export const MEMBERSHIP_CHANNEL_OPTIONS = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 500,
} as const;
