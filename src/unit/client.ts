import { credentials, Metadata, type ServiceError, type ClientReadableStream } from '@grpc/grpc-js';
import {
  UnitServiceClient, UnitExit, type UnitIdentity, type PageWrite, type AttachResponse,
} from '../gen/gridckpt/v1/unit.js';
import { realClock } from '../runtime/real-ports.js';

// The TypeScript client of the unit API (`gridckpt/unit`). A unit keeps all
// the state it must not lose in containers: the agent checkpoints those, not
// the process. On restore the unit is restarted with GRIDCKPT_RESTORED_EPOCH.

export const PAGE_BYTES = 4096;
/** The exit code of a unit whose agent is gone (unit.proto: UNIT_EXIT_AGENT_LOST). */
export const EXIT_AGENT_LOST: number = UnitExit.UNIT_EXIT_AGENT_LOST;

export type UnitWrite =
  | { container: string; page: number; offset: number; data: Uint8Array }
  | { container: string; page: number; offset: number; addI64: bigint };

export interface UnitEnv {
  socket: string;
  jobId: string;
  unitId: string;
  token: string;
  nodeId: string;
  restoredEpoch: bigint | null;
}

export interface ContainerHandle {
  name: string;
  pageCount: number;
  pageBytes: number;
  created: boolean;
}

export class UnitApiError extends Error {
  constructor(readonly code: number, readonly details: string, op: string) {
    super(`${op}: ${details}`);
    this.name = 'UnitApiError';
  }
}

/** Reads the unit's identity from the environment the agent gave it. */
export function unitEnvFromProcess(env: NodeJS.ProcessEnv = process.env): UnitEnv {
  const get = (name: string): string => {
    const v = env[name];
    if (!v) throw new Error(`${name} is not set: this process was not started by a gridckpt agent`);
    return v;
  };
  const restored = env['GRIDCKPT_RESTORED_EPOCH'];
  return {
    socket: get('GRIDCKPT_SOCKET'),
    jobId: get('GRIDCKPT_JOB_ID'),
    unitId: get('GRIDCKPT_UNIT_ID'),
    token: get('GRIDCKPT_UNIT_TOKEN'),
    nodeId: env['GRIDCKPT_NODE_ID'] ?? '',
    restoredEpoch: restored ? BigInt(restored) : null,
  };
}

export class UnitClient {
  private readonly client: UnitServiceClient;
  private readonly unit: UnitIdentity;
  private lifeline: ClientReadableStream<AttachResponse> | null = null;

  constructor(readonly env: UnitEnv, readonly callTimeoutMs = 30_000) {
    this.client = new UnitServiceClient(`unix:${env.socket}`, credentials.createInsecure());
    this.unit = { jobId: env.jobId, unitId: env.unitId, token: env.token };
  }

  static fromEnv(): UnitClient {
    return new UnitClient(unitEnvFromProcess());
  }

  /**
   * Holds the lifeline to the agent. When it breaks the agent is gone, and a
   * unit of a dead node must not run on: onLost (default: exit EXIT_AGENT_LOST, 75) is called.
   */
  attach(onLost: (reason: string) => void = defaultOnLost): Promise<void> {
    return new Promise((resolve, reject) => {
      let attached = false;
      const stream = this.client.attach({ unit: this.unit });
      this.lifeline = stream;
      stream.on('data', () => {
        if (!attached) {
          attached = true;
          resolve();
        }
      });
      const lost = (reason: string) => {
        if (this.lifeline !== stream) return; // closed on purpose
        if (attached) onLost(reason);
        else reject(new Error(`attach to agent at ${this.env.socket} failed: ${reason}`));
      };
      stream.on('error', (err: ServiceError) => lost(err.details || err.message));
      stream.on('end', () => lost('agent ended the lifeline'));
    });
  }

  openContainer(name: string, opts: { pageCount?: number; create?: boolean } = {}): Promise<ContainerHandle> {
    return this.call('openContainer', { unit: this.unit, name, pageCount: opts.pageCount ?? 0, create: opts.create ?? false });
  }

  async read(container: string, page: number, offset: number, length: number): Promise<Buffer> {
    const r = await this.call<{ data: Buffer }>('read', { unit: this.unit, container, page, offset, length });
    return r.data;
  }

  async readI64(container: string, page: number, offset: number): Promise<bigint> {
    return (await this.read(container, page, offset, 8)).readBigInt64LE(0);
  }

  async write(container: string, page: number, offset: number, data: Uint8Array): Promise<void> {
    await this.call('write', { unit: this.unit, write: toPb({ container, page, offset, data }) });
  }

  /** All writes land together or none does; a checkpoint never splits them. */
  async batch(writes: UnitWrite[]): Promise<number> {
    const r = await this.call<{ applied: number }>('writeBatch', { unit: this.unit, writes: writes.map(toPb) });
    return r.applied;
  }

  close(): void {
    const stream = this.lifeline;
    this.lifeline = null;
    stream?.cancel();
    this.client.close();
  }

  private call<T>(method: 'openContainer' | 'read' | 'write' | 'writeBatch', request: object): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // Wall-clock time on the wire, judged by the agent: real time.
      const deadline = new Date(realClock.wallMs() + this.callTimeoutMs);
      const fn = (this.client[method] as unknown as (
        req: object, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: T) => void,
      ) => void).bind(this.client);
      fn(request, new Metadata(), { deadline }, (err, res) => {
        if (err) reject(new UnitApiError(err.code, err.details, method));
        else resolve(res);
      });
    });
  }
}

function toPb(w: UnitWrite): PageWrite {
  const base = { container: w.container, page: w.page, offset: w.offset };
  if ('data' in w) return { ...base, op: { $case: 'data', value: Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength) } };
  return { ...base, op: { $case: 'addI64', value: w.addI64 } };
}

function defaultOnLost(reason: string): void {
  process.stderr.write(`gridckpt unit: lost the agent (${reason}); stopping\n`);
  process.exit(EXIT_AGENT_LOST);
}
