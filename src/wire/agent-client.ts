import type { ChannelOptions } from '@grpc/grpc-js';
import { channelCredentials, INSECURE, type TransportSecurity } from '../common/transport-security.js';
import { callUnary } from '../common/grpc-call.js';
import { realClock } from '../runtime/real-ports.js';
import { openWatch, type WatchOptions, type WatchStream } from './watch-client.js';
import { NodeAgentServiceClient } from '../gen/gridckpt/v1/node_agent.js';
import * as pb from '../gen/gridckpt/v1/node_agent.js';

// A promise-returning client of the node agent's service with a deadline on
// every call; used by the CLI, the demo and tests.

/** Kept as the name callers catch; every client's calls fail with it. */
export { GrpcCallError as AgentCallError } from '../common/grpc-call.js';

export class AgentClient {
  private readonly client: NodeAgentServiceClient;

  /**
   * security: mTLS (the server must hold an agent certificate, of node nodeId when given) or
   * plaintext, for --insecure services on loopback.
   */
  constructor(readonly address: string, readonly timeoutMs = 30_000, options: ChannelOptions = {}, security: TransportSecurity = INSECURE, nodeId?: string) {
    this.client = new NodeAgentServiceClient(address, channelCredentials(security, 'agent', nodeId), options);
  }

  startJob(req: pb.DeepPartial<pb.StartJobRequest>) { return this.call<pb.StartJobRequest, pb.StartJobResponse>('startJob', pb.StartJobRequest.fromPartial(req)); }
  stopJob(req: pb.StopJobRequest) { return this.call<pb.StopJobRequest, pb.StopJobResponse>('stopJob', req); }
  deleteJob(req: pb.DeleteJobRequest) { return this.call<pb.DeleteJobRequest, pb.DeleteJobResponse>('deleteJob', req); }
  checkpoint(req: pb.CheckpointRequest) { return this.call<pb.CheckpointRequest, pb.CheckpointResponse>('checkpoint', req); }
  listEpochs(req: pb.ListEpochsRequest) { return this.call<pb.ListEpochsRequest, pb.ListEpochsResponse>('listEpochs', req); }
  verifyEpoch(req: pb.VerifyEpochRequest) { return this.call<pb.VerifyEpochRequest, pb.VerifyEpochResponse>('verifyEpoch', req); }
  restore(req: pb.DeepPartial<pb.RestoreRequest>) { return this.call<pb.RestoreRequest, pb.RestoreResponse>('restore', pb.RestoreRequest.fromPartial(req)); }
  status() { return this.call<pb.StatusRequest, pb.StatusResponse>('status', {}); }
  readContainer(req: pb.ReadContainerRequest) { return this.call<pb.ReadContainerRequest, pb.ReadContainerResponse>('readContainer', req); }
  waitJob(req: pb.WaitJobRequest) {
    return this.call<pb.WaitJobRequest, pb.WaitJobResponse>('waitJob', req, req.timeoutMs + this.timeoutMs);
  }

  /** lastCommitted absent: 0 (not said). */
  prepareCheckpoint(req: Omit<pb.PrepareCheckpointRequest, 'lastCommitted'> & { lastCommitted?: bigint }) {
    return this.call<pb.PrepareCheckpointRequest, pb.PrepareCheckpointResponse>('prepareCheckpoint', { lastCommitted: 0n, ...req });
  }
  commitCheckpoint(req: pb.CommitCheckpointRequest) { return this.call<pb.CommitCheckpointRequest, pb.CommitCheckpointResponse>('commitCheckpoint', req); }
  abortCheckpoint(req: pb.AbortCheckpointRequest) { return this.call<pb.AbortCheckpointRequest, pb.AbortCheckpointResponse>('abortCheckpoint', req); }

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
