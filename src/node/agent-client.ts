import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { NodeAgentServiceClient } from '../gen/gridckpt/v1/node_agent.js';
import * as pb from '../gen/gridckpt/v1/node_agent.js';
import { statusName } from '../common/grpc-status.js';

// A promise-returning client of the node agent's service with a deadline on
// every call; used by the CLI, the demo and tests.

export class AgentCallError extends Error {
  constructor(readonly code: number, readonly details: string, method: string) {
    super(`${method}: ${statusName(code)}: ${details}`);
    this.name = 'AgentCallError';
  }
}

type Unary<Req, Res> = (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: Res) => void) => void;

export class AgentClient {
  private readonly client: NodeAgentServiceClient;

  constructor(readonly address: string, readonly timeoutMs = 30_000) {
    this.client = new NodeAgentServiceClient(address, credentials.createInsecure());
  }

  startJob(req: pb.StartJobRequest) { return this.call<pb.StartJobRequest, pb.StartJobResponse>('startJob', req); }
  stopJob(req: pb.StopJobRequest) { return this.call<pb.StopJobRequest, pb.StopJobResponse>('stopJob', req); }
  checkpoint(req: pb.CheckpointRequest) { return this.call<pb.CheckpointRequest, pb.CheckpointResponse>('checkpoint', req); }
  listEpochs(req: pb.ListEpochsRequest) { return this.call<pb.ListEpochsRequest, pb.ListEpochsResponse>('listEpochs', req); }
  verifyEpoch(req: pb.VerifyEpochRequest) { return this.call<pb.VerifyEpochRequest, pb.VerifyEpochResponse>('verifyEpoch', req); }
  restore(req: pb.DeepPartial<pb.RestoreRequest>) { return this.call<pb.RestoreRequest, pb.RestoreResponse>('restore', pb.RestoreRequest.fromPartial(req)); }
  status() { return this.call<pb.StatusRequest, pb.StatusResponse>('status', {}); }
  readContainer(req: pb.ReadContainerRequest) { return this.call<pb.ReadContainerRequest, pb.ReadContainerResponse>('readContainer', req); }
  waitJob(req: pb.WaitJobRequest) {
    return this.call<pb.WaitJobRequest, pb.WaitJobResponse>('waitJob', req, req.timeoutMs + this.timeoutMs);
  }

  prepareCheckpoint(req: pb.PrepareCheckpointRequest) { return this.call<pb.PrepareCheckpointRequest, pb.PrepareCheckpointResponse>('prepareCheckpoint', req); }
  commitCheckpoint(req: pb.CommitCheckpointRequest) { return this.call<pb.CommitCheckpointRequest, pb.CommitCheckpointResponse>('commitCheckpoint', req); }
  abortCheckpoint(req: pb.AbortCheckpointRequest) { return this.call<pb.AbortCheckpointRequest, pb.AbortCheckpointResponse>('abortCheckpoint', req); }

  close(): void {
    this.client.close();
  }

  private call<Req, Res>(method: string, req: Req, timeoutMs = this.timeoutMs): Promise<Res> {
    const fn = (this.client as unknown as Record<string, Unary<Req, Res>>)[method]!.bind(this.client);
    return new Promise((resolve, reject) => {
      fn(req, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => {
        if (err) reject(new AgentCallError(err.code, err.details, method));
        else resolve(res);
      });
    });
  }
}
