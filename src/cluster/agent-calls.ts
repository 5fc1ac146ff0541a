import { status as grpcStatus } from '@grpc/grpc-js';
import { GridError, type Damaged } from '../common/errors.js';
import type { ContainerInfo as ContainerInfoPb, JobSpec, PartInfo as PartInfoPb, RestoreSource as RestoreSourcePb } from '../gen/gridckpt/v1/node_agent.js';
import type { AgentAnswer, AgentCall, PartRef, RefusalCode, RestoreSource } from '../protocol/messages.js';
import { epochChain, type ContainerMeta, type PartInfo } from '../store/index.js';
import { lookupManifest } from '../store/epoch-catalog.js';
import type { AgentClient } from '../wire/agent-client.js';
import { partInfoFromPb } from '../wire/codec.js';

// One call of the cluster supervisor core to an agent, over gRPC: the core's
// domain request in, the agent's answer out as the core's domain answer (or
// "unreachable" when the call did not reach the agent or got no answer). The
// core decides everything; this file only translates — the job's unit specs
// (which the core does not hold), the stores' directories, and the writers
// whose parts a restore loads.

export type CallResult = { kind: 'answer'; answer: AgentAnswer } | { kind: 'unreachable'; reason: string };

/** A part an agent reported durable: what the manifest needs besides the core's PartRef. */
export interface DurablePart {
  part: PartInfo;
  containers: ContainerMeta[];
}

export interface AgentCallTarget {
  client: AgentClient;
  /** The job's whole spec (the units' commands); null when the shell no longer has it. */
  spec(jobId: string): JobSpec | null;
  /** A store's directory by its cluster id (this cluster's own, or one a grid restore named). */
  storeDir(store: string): string | null;
  /** Where a durable part's record goes until the manifest is written. */
  keepPart(jobId: string, epoch: bigint, writer: string, p: DurablePart): void;
}

export async function performAgentCall(t: AgentCallTarget, nodeId: string, call: AgentCall): Promise<CallResult> {
  const r = call.req;
  const fence = (epoch: bigint) => ({ clusterId: call.from, nodeId: 'coordinator', incarnation: call.incarnation, epoch, leaderTerm: 0n });
  try {
    switch (r.kind) {
      case 'startJob': {
        const spec = t.spec(r.jobId);
        if (!spec) return refused(`job ${r.jobId}: the coordinator has no spec for it`, 'not-found');
        const job: JobSpec = { ...spec, units: spec.units.filter((u) => r.units.includes(u.unitId)), checkpointIntervalMs: 0, fullEvery: 0 };
        const leaseBound = r.leaseMs !== null;
        if (r.sources.length === 0) {
          // No source: the core starts the units anew, whatever the store holds.
          await t.client.startJob({ job, leaseBound, fresh: true, gen: BigInt(r.gen) });
          return ok();
        }
        const resolved = await resolveSources(t, r.jobId, r.sources);
        if (resolved.kind === 'corrupt') return { kind: 'answer', answer: resolved };
        await t.client.restore({ jobId: r.jobId, job, sources: resolved.sources, leaseBound, gen: BigInt(r.gen) }).catch((err: unknown) => {
          throw corruptOf(err, r.sources, t) ?? err;
        });
        return ok();
      }
      case 'stopJob':
        await t.client.stopJob({ jobId: r.jobId }).catch((err: unknown) => {
          // Nothing to stop is what a stop wants.
          if ((err as { code?: number }).code !== grpcStatus.NOT_FOUND) throw err;
        });
        return ok();
      case 'prepare': {
        const p = await t.client.prepareCheckpoint({ fence: fence(r.epoch), jobId: r.jobId, parentEpoch: r.parentEpoch ?? 0n, full: r.full, lastCommitted: r.lastCommitted ?? 0n });
        const answer: Extract<AgentAnswer, { kind: 'prepared' }> = { kind: 'prepared', pages: Number(p.pages), bytes: Number(p.bytes), done: p.done, digest: p.digest };
        // A read-only vote: its part is durable already; kept for the manifest as a COMMIT's would be.
        if (p.part) answer.readOnly = keptPart(t, r.jobId, r.epoch, p.part, p.containers);
        return { kind: 'answer', answer };
      }
      case 'commit': {
        const c = await t.client.commitCheckpoint({ fence: fence(r.epoch), jobId: r.jobId });
        if (!c.part) return refused(`node ${nodeId} answered COMMIT of epoch ${r.epoch} without its part`, 'aborted');
        return { kind: 'answer', answer: { kind: 'durable', ...keptPart(t, r.jobId, r.epoch, c.part, c.containers) } };
      }
      case 'abort':
        await t.client.abortCheckpoint({ fence: fence(r.epoch), jobId: r.jobId, reason: 'aborted by the cluster coordinator' });
        return ok();
    }
  } catch (err) {
    if (err instanceof CorruptSource) return { kind: 'answer', answer: err.answer };
    const code = (err as { code?: number }).code;
    const details = (err as { details?: string }).details ?? (err instanceof Error ? err.message : String(err));
    if (code === grpcStatus.UNAVAILABLE || code === grpcStatus.DEADLINE_EXCEEDED || code === grpcStatus.CANCELLED) return { kind: 'unreachable', reason: details };
    if (err instanceof GridError) return refused(err.message, REFUSAL_CODES.has(err.kind) ? err.kind as RefusalCode : undefined);
    return refused(details, codeName(code));
  }
}

/** A durable part an agent answered with: its record kept for the manifest, and the core's PartRef of it. */
function keptPart(t: AgentCallTarget, jobId: string, epoch: bigint, pb: PartInfoPb, containers: ContainerInfoPb[]): { part: PartRef; digest: string } {
  const part = partInfoFromPb(pb);
  t.keepPart(jobId, epoch, part.nodeId, { part, containers: containers.map((x) => ({ name: x.name, pageCount: x.pageCount })) });
  return { part: { writer: part.nodeId, epoch, units: [], pages: part.pageCount }, digest: part.tableDigest };
}

function ok(): CallResult {
  return { kind: 'answer', answer: { kind: 'ok' } };
}

function refused(reason: string, code?: RefusalCode): CallResult {
  return { kind: 'answer', answer: { kind: 'refused', reason, ...(code ? { code } : {}) } };
}

class CorruptSource extends Error {
  constructor(readonly answer: Extract<AgentAnswer, { kind: 'corrupt' }>) {
    super(answer.reason);
  }
}

/**
 * The writers whose parts hold these units' pages as of the epoch: the nodes
 * that ran them at the cut (the epoch's placement, each writer's parts held
 * as its layout says). The core makes the first epoch after any restart full,
 * so a chain's writers ran the same units all along.
 */
async function resolveSources(t: AgentCallTarget, jobId: string, sources: RestoreSource[]): Promise<{ kind: 'ok'; sources: RestoreSourcePb[] } | Extract<AgentAnswer, { kind: 'corrupt' }>> {
  const out: RestoreSourcePb[] = [];
  for (const s of sources) {
    const dir = t.storeDir(s.store);
    if (dir === null) return { kind: 'corrupt', store: s.store, epoch: s.epoch, reason: `the store of cluster ${s.store} is not known here` };
    // The epoch's own manifest first: a missing one is named as such (the walk-back's reason).
    const own = await lookupManifest(dir, jobId, s.epoch);
    if (own.kind !== 'committed') return { kind: 'corrupt', store: s.store, epoch: s.epoch, reason: own.kind === 'missing' ? `manifest missing: ${own.reason}` : `manifest invalid: ${own.error.message}` };
    let chain;
    try {
      chain = await epochChain(dir, jobId, s.epoch);
    } catch (err) {
      return { kind: 'corrupt', store: s.store, epoch: s.epoch, reason: err instanceof Error ? err.message : String(err) };
    }
    const layout = chain[0]!.layout;
    const holders = new Set(s.units.map((u) => layout.placement[u]));
    if (holders.has(undefined)) return { kind: 'corrupt', store: s.store, epoch: s.epoch, reason: `units ${s.units.filter((u) => layout.placement[u] === undefined).join(', ')} are not in epoch ${s.epoch}` };
    const writers = new Set<string>();
    for (const m of chain) for (const p of m.parts) if (holders.has(layout.partOwners[p.nodeId] ?? p.nodeId)) writers.add(p.nodeId);
    out.push({ storeDir: dir, epoch: s.epoch, partsFrom: [...writers].sort() });
  }
  return { kind: 'ok', sources: out };
}

/**
 * A restore refused for damaged data: the source whose store the agent's
 * trailers name (grpc-status.ts, damagedOf), at the epoch they name; an
 * answer that names none is blamed on the first source.
 */
function corruptOf(err: unknown, sources: RestoreSource[], t: AgentCallTarget): CorruptSource | null {
  const code = (err as { code?: number }).code;
  if (code !== grpcStatus.DATA_LOSS && code !== grpcStatus.NOT_FOUND) return null;
  const reason = (err as { details?: string }).details ?? String(err);
  const damaged = (err as { damaged?: Damaged | null }).damaged ?? null;
  const named = (damaged && sources.find((s) => t.storeDir(s.store) === damaged.where)) ?? sources[0]!;
  return new CorruptSource({ kind: 'corrupt', store: named.store, epoch: damaged?.epoch ?? named.epoch, reason });
}

const REFUSAL_CODES: ReadonlySet<string> = new Set(['not-found', 'already-exists', 'failed-precondition', 'aborted', 'invalid-argument', 'resource-exhausted', 'unavailable', 'deadline-exceeded']);

const CODES: Partial<Record<number, RefusalCode>> = {
  [grpcStatus.NOT_FOUND]: 'not-found',
  [grpcStatus.ALREADY_EXISTS]: 'already-exists',
  [grpcStatus.FAILED_PRECONDITION]: 'failed-precondition',
  [grpcStatus.ABORTED]: 'aborted',
  [grpcStatus.INVALID_ARGUMENT]: 'invalid-argument',
  [grpcStatus.RESOURCE_EXHAUSTED]: 'resource-exhausted',
};

function codeName(code: number | undefined): RefusalCode | undefined {
  return code === undefined ? undefined : CODES[code];
}
