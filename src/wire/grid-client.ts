import type { ChannelOptions } from '@grpc/grpc-js';
import { channelCredentials, INSECURE, type TransportSecurity } from '../common/transport-security.js';
import { callUnary } from '../common/grpc-call.js';
import { realClock } from '../runtime/real-ports.js';
import { openWatch, type WatchOptions, type WatchStream } from './watch-client.js';
import { GridServiceClient } from '../gen/gridckpt/v1/grid.js';
import type * as pb from '../gen/gridckpt/v1/grid.js';

// A promise-returning client of the grid coordinator, a deadline on every call.

export class GridClient {
  private readonly client: GridServiceClient;

  /** security: mTLS (the server must hold a grid certificate) or plaintext, for --insecure services on loopback. */
  constructor(readonly address: string, readonly timeoutMs = 30_000, options: ChannelOptions = {}, security: TransportSecurity = INSECURE) {
    this.client = new GridServiceClient(address, channelCredentials(security, 'grid'), options);
  }

  registerCluster(req: pb.RegisterClusterRequest, timeoutMs?: number) { return this.call<pb.RegisterClusterRequest, pb.RegisterClusterResponse>('registerCluster', req, timeoutMs); }
  clusterHeartbeat(req: pb.ClusterHeartbeatRequest, timeoutMs?: number) { return this.call<pb.ClusterHeartbeatRequest, pb.ClusterHeartbeatResponse>('clusterHeartbeat', req, timeoutMs); }
  /** restartPolicy absent: the default (restore). */
  submitGridJob(req: { job: pb.SubmitGridJobRequest['job']; restartPolicy?: pb.SubmitGridJobRequest['restartPolicy'] }) {
    return this.call<pb.SubmitGridJobRequest, pb.SubmitGridJobResponse>('submitGridJob', { restartPolicy: undefined, ...req });
  }
  checkpointGridJob(req: pb.CheckpointGridJobRequest) { return this.call<pb.CheckpointGridJobRequest, pb.CheckpointGridJobResponse>('checkpointGridJob', req, this.timeoutMs * 4); }
  /** Job control: answers once done (every stop answered, a restore's units running): the long deadline. */
  controlGridJob(req: pb.ControlGridJobRequest) { return this.call<pb.ControlGridJobRequest, pb.ControlGridJobResponse>('controlGridJob', req, this.timeoutMs * 4); }
  status() { return this.call<pb.GridStatusRequest, pb.GridStatusResponse>('gridStatus', {}); }

  /** The service's events as they happen (see watch-client.ts). */
  watch(o: WatchOptions = {}): WatchStream { return openWatch(this.client, o); }

  close(): void {
    this.client.close();
  }

  private call<Req, Res>(method: string, req: Req, timeoutMs = this.timeoutMs): Promise<Res> {
    // A gRPC deadline is wall-clock time on the wire, judged by the peer: real time, whatever the runtime.
    return callUnary<Req, Res>(this.client, method, req, new Date(realClock.wallMs() + timeoutMs));
  }
}
