import type { ChannelOptions } from '@grpc/grpc-js';
import { channelCredentials, INSECURE, type TransportSecurity } from '../common/transport-security.js';
import { callUnary } from '../common/grpc-call.js';
import { realClock } from '../runtime/real-ports.js';
import { openWatch, type WatchOptions, type WatchStream } from './watch-client.js';
import { ClusterServiceClient } from '../gen/gridckpt/v1/cluster.js';
import * as pb from '../gen/gridckpt/v1/cluster.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import type { Fence } from '../gen/gridckpt/v1/common.js';

// A promise-returning client of the cluster coordinator, a deadline on every call.

export class ClusterClient {
  private readonly client: ClusterServiceClient;

  /** security: mTLS (the server must hold a cluster certificate) or plaintext, for --insecure services on loopback. */
  constructor(readonly address: string, readonly timeoutMs = 30_000, options: ChannelOptions = {}, security: TransportSecurity = INSECURE) {
    this.client = new ClusterServiceClient(address, channelCredentials(security, 'cluster'), options);
  }

  registerNode(req: pb.RegisterNodeRequest, timeoutMs?: number) { return this.call<pb.RegisterNodeRequest, pb.RegisterNodeResponse>('registerNode', req, timeoutMs); }
  heartbeat(req: pb.HeartbeatRequest, timeoutMs?: number) { return this.call<pb.HeartbeatRequest, pb.HeartbeatResponse>('heartbeat', req, timeoutMs); }
  reportJobs(req: pb.ReportJobsRequest, timeoutMs?: number) { return this.call<pb.ReportJobsRequest, pb.ReportJobsResponse>('reportJobs', req, timeoutMs); }
  /** An operator's submit names only the job; the grid's also marks it grid-managed with its gen. */
  submitJob(req: { job: JobSpec; gridManaged?: boolean; gridGen?: bigint; gridLeaseMs?: number; restartPolicy?: pb.RestartPolicy; gridFence?: Fence }) {
    return this.call<pb.SubmitJobRequest, pb.SubmitJobResponse>('submitJob', { gridManaged: false, gridGen: 0n, gridLeaseMs: 0, restartPolicy: undefined, gridFence: undefined, ...req });
  }
  checkpointJob(req: pb.CheckpointJobRequest) { return this.call<pb.CheckpointJobRequest, pb.CheckpointJobResponse>('checkpointJob', req, this.timeoutMs * 4); }
  /** Job control: answers once done (a cancel's stops answered, a restore's units running): the long deadline. */
  controlJob(req: pb.ControlJobRequest) { return this.call<pb.ControlJobRequest, pb.ControlJobResponse>('controlJob', req, this.timeoutMs * 4); }
  prepareRound(req: pb.PrepareRoundRequest, timeoutMs?: number) { return this.call<pb.PrepareRoundRequest, pb.PrepareRoundResponse>('prepareRound', req, timeoutMs); }
  commitRound(req: pb.CommitRoundRequest, timeoutMs?: number) { return this.call<pb.CommitRoundRequest, pb.CommitRoundResponse>('commitRound', req, timeoutMs); }
  abortRound(req: pb.AbortRoundRequest, timeoutMs?: number) { return this.call<pb.AbortRoundRequest, pb.AbortRoundResponse>('abortRound', req, timeoutMs); }
  restoreGridJob(req: pb.RestoreGridJobRequest) { return this.call<pb.RestoreGridJobRequest, pb.RestoreGridJobResponse>('restoreGridJob', req, this.timeoutMs * 4); }
  stopGridJob(req: pb.StopGridJobRequest, timeoutMs?: number) { return this.call<pb.StopGridJobRequest, pb.StopGridJobResponse>('stopGridJob', req, timeoutMs); }
  status() { return this.call<pb.ClusterStatusRequest, pb.ClusterStatusResponse>('clusterStatus', {}); }

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
