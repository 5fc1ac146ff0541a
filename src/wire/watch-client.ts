import { Metadata, status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import type { WatchEvent } from '../gen/gridckpt/v1/common.js';
import { GrpcCallError } from '../common/grpc-call.js';

// The client side of any service's Watch RPC: a stream of WatchEvents read
// at the reader's pace (grpc-js holds back the server when the reader does
// not take), a promise that says when the server has subscribed this reader
// (from then on no event is missed), and a cancel.

export interface WatchOptions {
  /** Only this job's events. */
  jobId?: string;
  /** The most recent buffered events first (the server bounds it). */
  replayRecent?: number;
  /** Wait for the service to be reachable instead of failing at once (a restarting service). */
  waitForReady?: boolean;
  /** Give up (DEADLINE_EXCEEDED) at this wall-clock instant (Unix ms); none by default: a watch runs until ended. */
  deadlineUnixMs?: number;
}

type WatchFn = (req: { jobId: string; replayRecent: number }, md: Metadata, opts: { deadline?: Date }) => ClientReadableStream<{ event: WatchEvent | undefined }>;

export class WatchStream {
  /** Resolves once the server has subscribed this reader; rejects if the stream fails first. */
  readonly subscribed: Promise<void>;
  private cancelledHere = false;

  constructor(private readonly call: ClientReadableStream<{ event: WatchEvent | undefined }>, private readonly method: string) {
    this.subscribed = new Promise<void>((resolve, reject) => {
      call.once('metadata', () => resolve());
      call.once('error', (err: ServiceError) => reject(new GrpcCallError(err.code, err.details, method)));
      call.once('end', () => reject(new GrpcCallError(status.UNAVAILABLE, 'the stream ended before it was subscribed', method)));
    });
    // Whoever does not wait for it must not see an unhandled rejection.
    this.subscribed.catch(() => undefined);
    // Start reading now: grpc-js holds back the server (HTTP/2 flow control) only once a read has
    // begun; before that it would keep every message that arrives.
    call.read(0);
  }

  /**
   * The events, in order. Ends when the server ends the stream or after
   * cancel(); throws GrpcCallError when it fails (RESOURCE_EXHAUSTED: this
   * reader fell too far behind and was cut off).
   */
  async *events(): AsyncGenerator<WatchEvent> {
    try {
      for await (const msg of this.call as AsyncIterable<{ event: WatchEvent | undefined }>) {
        if (msg.event) yield msg.event;
      }
    } catch (err) {
      const e = err as Partial<ServiceError>;
      if (this.cancelledHere && e.code === status.CANCELLED) return;
      throw new GrpcCallError(e.code ?? status.UNKNOWN, e.details ?? String(err), this.method);
    }
  }

  cancel(): void {
    this.cancelledHere = true;
    this.call.cancel();
  }

  /** This reader ended the stream (cancel()), not the service. */
  get cancelled(): boolean {
    return this.cancelledHere;
  }
}

export function openWatch(client: unknown, o: WatchOptions = {}): WatchStream {
  const fn = (client as { watch: WatchFn }).watch.bind(client);
  const md = new Metadata({ waitForReady: o.waitForReady === true });
  const call = fn({ jobId: o.jobId ?? '', replayRecent: o.replayRecent ?? 0 }, md, o.deadlineUnixMs === undefined ? {} : { deadline: new Date(o.deadlineUnixMs) });
  return new WatchStream(call, 'watch');
}
