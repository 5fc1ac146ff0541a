import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { ClusterServiceClient } from '../gen/gridckpt/v1/cluster.js';
import * as pb from '../gen/gridckpt/v1/cluster.js';
import { AgentCallError } from '../node/agent-client.js';

// A promise-returning client of the cluster coordinator, a deadline on every call.

type Unary<Req, Res> = (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: Res) => void) => void;

export class ClusterClient {
  private readonly client: ClusterServiceClient;

  constructor(readonly address: string, readonly timeoutMs = 30_000) {
    this.client = new ClusterServiceClient(address, credentials.createInsecure());
  }

  registerNode(req: pb.RegisterNodeRequest, timeoutMs?: number) { return this.call<pb.RegisterNodeRequest, pb.RegisterNodeResponse>('registerNode', req, timeoutMs); }
  heartbeat(req: pb.HeartbeatRequest, timeoutMs?: number) { return this.call<pb.HeartbeatRequest, pb.HeartbeatResponse>('heartbeat', req, timeoutMs); }
  submitJob(req: pb.SubmitJobRequest) { return this.call<pb.SubmitJobRequest, pb.SubmitJobResponse>('submitJob', req); }
  checkpointJob(req: pb.CheckpointJobRequest) { return this.call<pb.CheckpointJobRequest, pb.CheckpointJobResponse>('checkpointJob', req, this.timeoutMs * 4); }
  status() { return this.call<pb.ClusterStatusRequest, pb.ClusterStatusResponse>('clusterStatus', {}); }

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
