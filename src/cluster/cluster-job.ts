import { performance } from 'node:perf_hooks';
import { GridError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { RoundCoordinator, nextEpoch, type RoundConfig, type RoundInput, type RoundOutcome, type SendAction, type WriteManifestAction } from './core/round.js';
import type { AgentClient } from '../node/agent-client.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import { partInfoFromPb } from '../node/codec.js';
import { commitEpoch, type PartInfo } from '../node/store/index.js';

// One job of the cluster: its placement and its rounds. The round logic is
// the pure RoundCoordinator; this is its serial driver: it performs each
// step's actions in order (persist, then send, then reply), turns every
// agent answer or failure back into an input, and arms one timer at the
// core's next deadline.

export type ClusterJobState = 'running' | 'completed' | 'recovering' | 'failed';

export interface RoundTarget {
  clusterId: string;
  incarnation: bigint;
  storeDir: string;
  clientOf(nodeId: string): AgentClient | null;
  log: Logger;
  onOutcome(job: ClusterJob, outcome: RoundOutcome): void;
}

interface PartAnswer {
  part: PartInfo;
  containers: Array<{ name: string; pageCount: number }>;
}

export class ClusterJob {
  state: ClusterJobState = 'running';
  /** unitId → nodeId */
  placement: Map<string, string>;
  /** Writer of checkpoint parts → the node that holds its containers now. */
  partOwners = new Map<string, string>();
  lastEpoch: bigint | null = null;
  roundsSinceFull = 0;
  recoveries = 0;
  lastError = '';
  readonly round: RoundCoordinator;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private readonly waiters = new Map<bigint, (o: RoundOutcome) => void>();
  private running: Promise<RoundOutcome> | null = null;

  constructor(readonly spec: JobSpec, placement: Map<string, string>, roundConfig: RoundConfig, private readonly target: RoundTarget) {
    this.placement = placement;
    for (const node of new Set(placement.values())) this.partOwners.set(node, node);
    this.round = new RoundCoordinator(spec.jobId, roundConfig);
  }

  get jobId(): string {
    return this.spec.jobId;
  }

  nodes(): string[] {
    return [...new Set(this.placement.values())].sort();
  }

  /** Parts a node must load to restore what it holds now. */
  partsFor(nodeId: string): string[] {
    return [...this.partOwners].filter(([, holder]) => holder === nodeId).map(([writer]) => writer);
  }

  specFor(nodeId: string): JobSpec {
    return { ...this.spec, units: this.spec.units.filter((u) => this.placement.get(u.unitId) === nodeId), checkpointIntervalMs: 0, fullEvery: 0 };
  }

  /** Starts a round; resolves with its outcome. */
  checkpoint(): Promise<RoundOutcome> {
    if (this.round.status().phase !== 'idle') {
      return Promise.reject(new GridError('aborted', `a round of job ${this.jobId} is already running`));
    }
    const epoch = nextEpoch(this.round.status().highestEpoch);
    const full = this.lastEpoch === null || this.roundsSinceFull + 1 >= (this.spec.fullEvery || 8);
    const done = new Promise<RoundOutcome>((resolve) => this.waiters.set(epoch, resolve));
    this.running = done;
    this.step({
      kind: 'start', roundId: `${this.jobId}-${epoch}`, jobId: this.jobId, epoch,
      parentEpoch: full ? null : this.lastEpoch, participants: this.nodes(), full,
    });
    return done;
  }

  /** Resolves once no round is running. */
  async whenIdle(): Promise<void> {
    while (this.running && this.round.status().phase !== 'idle') await this.running;
  }

  /** The failure detector's verdict: the round, if any, aborts at once. */
  participantFailed(nodeId: string, reason: string): void {
    this.step({ kind: 'participantFailed', participant: nodeId, reason });
  }

  stop(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    const s = this.round.status();
    if (s.phase !== 'idle' && s.epoch !== null) this.step({ kind: 'cancel', epoch: s.epoch, reason: 'job stopped' });
  }

  private step(input: RoundInput): void {
    const out = this.round.step(input, Math.floor(performance.now()));
    for (const p of out.persist) void this.writeManifest(p);
    for (const s of out.send) void this.send(s);
    if (out.reply && out.reply.kind !== 'prepareDone') this.finish(out.reply);
    this.armDeadline();
  }

  private finish(outcome: RoundOutcome): void {
    if (outcome.kind === 'committed') {
      this.lastEpoch = outcome.epoch;
      this.roundsSinceFull = outcome.full ? 0 : this.roundsSinceFull + 1;
    } else {
      this.lastError = `round ${outcome.epoch} aborted in ${outcome.phase}: ${outcome.reason}`;
    }
    this.target.onOutcome(this, outcome);
    this.waiters.get(outcome.epoch)?.(outcome);
    this.waiters.delete(outcome.epoch);
  }

  private armDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    const at = this.round.nextDeadlineMs();
    if (at === null) return;
    this.deadlineTimer = setTimeout(() => this.step({ kind: 'tick' }), Math.max(0, at - performance.now()) + 1);
  }

  private fence(epoch: bigint) {
    return { clusterId: this.target.clusterId, nodeId: 'coordinator', incarnation: this.target.incarnation, epoch };
  }

  private async send(s: SendAction): Promise<void> {
    const client = this.target.clientOf(s.to);
    const participant = s.to;
    const epoch = s.epoch;
    try {
      if (!client) throw new Error(`node ${s.to} is not registered`);
      switch (s.kind) {
        case 'prepare': {
          const r = await client.prepareCheckpoint({ fence: this.fence(epoch), jobId: this.jobId, parentEpoch: s.parentEpoch ?? 0n, full: s.full });
          this.step({ kind: 'prepared', participant, epoch, pages: Number(r.pages), bytes: Number(r.bytes), digest: '' });
          return;
        }
        case 'commit': {
          const r = await client.commitCheckpoint({ fence: this.fence(epoch), jobId: this.jobId });
          const part: PartAnswer = { part: partInfoFromPb(r.part!), containers: r.containers };
          this.step({ kind: 'durable', participant, epoch, part });
          return;
        }
        case 'abort':
          await client.abortCheckpoint({ fence: this.fence(epoch), jobId: this.jobId, reason: s.reason });
          return;
        default: {
          const never: never = s;
          throw new Error(`unknown send ${JSON.stringify(never)}`);
        }
      }
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (s.kind === 'prepare') this.step({ kind: 'prepareFailed', participant, epoch, reason });
      else if (s.kind === 'commit') this.step({ kind: 'durableFailed', participant, epoch, reason });
      else this.target.log.debug({ jobId: this.jobId, node: participant, reason }, 'abort not delivered');
    }
  }

  private async writeManifest(p: WriteManifestAction): Promise<void> {
    try {
      const answers = p.parts.map((x) => x.part as PartAnswer);
      await commitEpoch({
        storeDir: this.target.storeDir,
        jobId: p.jobId,
        epoch: p.epoch,
        parentEpoch: p.parentEpoch,
        full: p.full,
        createdUnixMs: Date.now(),
        containers: answers.flatMap((a) => a.containers),
        parts: answers.map((a) => a.part),
        job: { ...this.spec, placement: Object.fromEntries(this.placement) },
      });
      this.step({ kind: 'manifestWritten', epoch: p.epoch });
    } catch (err) {
      this.step({ kind: 'manifestFailed', epoch: p.epoch, reason: err instanceof Error ? err.message : String(err) });
    }
  }
}
