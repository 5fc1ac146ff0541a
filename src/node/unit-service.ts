import type { ServerWritableStream } from '@grpc/grpc-js';
import type { UnitServiceServer, AttachRequest, AttachResponse, UnitIdentity } from '../gen/gridckpt/v1/unit.js';
import { unary, toServiceError } from '../common/grpc-status.js';
import { invalidArgument } from '../common/errors.js';
import { PAGE_BYTES } from './memory/page-memory.js';
import type { NodeAgent, UnitIdentity as Identity } from './agent.js';
import { pageWriteFromPb, required } from './codec.js';

// gRPC shell of the unit API: decode, hand to the agent, encode.

function identity(u: UnitIdentity | undefined): Identity {
  return required('unit identity', u);
}

export class UnitLifelines {
  private readonly calls = new Set<ServerWritableStream<AttachRequest, AttachResponse>>();

  add(call: ServerWritableStream<AttachRequest, AttachResponse>): void {
    this.calls.add(call);
    call.on('cancelled', () => this.calls.delete(call));
    call.on('close', () => this.calls.delete(call));
  }

  endAll(): void {
    for (const call of this.calls) call.end();
    this.calls.clear();
  }
}

export function unitServiceHandlers(agent: NodeAgent, lifelines: UnitLifelines, onBug: (e: unknown) => void): UnitServiceServer {
  return {
    openContainer: unary(async (req) => {
      const { info, created } = await agent.openContainer(identity(req.unit), req.name, req.pageCount, req.create);
      return { name: info.name, pageCount: info.pageCount, pageBytes: PAGE_BYTES, created };
    }, onBug),
    read: unary(async (req) => {
      const r = await agent.read(identity(req.unit), req.container, req.page, req.offset, req.length);
      return { data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength), version: r.version };
    }, onBug),
    write: unary(async (req) => {
      const w = required('write', req.write);
      await agent.applyBatch(identity(req.unit), [pageWriteFromPb(w, 0)]);
      return {};
    }, onBug),
    writeBatch: unary(async (req) => {
      if (req.writes.length === 0) throw invalidArgument('empty batch: send at least one write');
      const applied = await agent.applyBatch(identity(req.unit), req.writes.map(pageWriteFromPb));
      return { applied };
    }, onBug),
    attach: (call: ServerWritableStream<AttachRequest, AttachResponse>) => {
      try {
        agent.authUnit(identity(call.request.unit));
      } catch (err) {
        call.emit('error', toServiceError(err));
        return;
      }
      lifelines.add(call);
      call.write({ nodeId: agent.deps.config.nodeId, incarnation: agent.deps.incarnation });
    },
  };
}
