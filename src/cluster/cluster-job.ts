import { GridError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { nextEpoch, type RoundConfig, type RoundCoordinator, type RoundInput, type RoundOutcome, type RoundReply, type WriteManifestAction, type StartInput } from '../protocol/core/round.js';
import { RoundDriver, type DurableAnswer, type PreparedAnswer } from '../protocol/round-driver.js';
import type { AgentClient } from '../wire/agent-client.js';
import type { TierRuntime } from '../wire/clients.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import { partInfoFromPb } from '../wire/codec.js';
import { commitEpoch, storedSpecOf, type PartInfo } from '../store/index.js';
import { EpochSweeper } from './epoch-sweeper.js';

// One job of the cluster: its placement and its rounds, run by a RoundDriver
// over the pure RoundCoordinator with the node agents as participants and
// the cluster store's manifest as the decision. It also answers the grid's
// two-level rounds (gridPrepare holds after PREPARED; gridCommit proceeds).

export type ClusterJobState = 'running' | 'completed' | 'recovering' | 'failed' | 'fenced';

/** Parts of another store this job's nodes load on a restore (see adopted). */
export interface AdoptedParts {
  fromCluster: string;
  storeDir: string;
  epoch: bigint;
  /** Writer of parts in that store → the node here that loads them. */
  holders: Map<string, string>;
}

/** What one node loads on a restore, store by store (RestoreSource). */
export interface NodeSource {
  storeDir: string;
  epoch: bigint;
  parts: string[];
}

export interface RoundTarget {
  clusterId: string;
  incarnation: bigint;
  storeDir: string;
  /** The round driver's clock and timers, and the manifests' wall-clock stamps. */
  runtime: TierRuntime;
  clientOf(nodeId: string): AgentClient | null;
  log: Logger;
  onOutcome(job: ClusterJob, outcome: RoundOutcome): void;
  /** Every change of the job's state, wherever it is made (for Watch readers). */
  onState?(job: ClusterJob, from: ClusterJobState, to: ClusterJobState): void;
  onRoundStarted?(job: ClusterJob, round: StartInput): void;
}

interface PartAnswer {
  part: PartInfo;
  containers: Array<{ name: string; pageCount: number }>;
}

export class ClusterJob {
  private stateNow: ClusterJobState = 'running';
  /** unitId → nodeId */
  placement: Map<string, string>;
  /** Writer of checkpoint parts → the node that holds its containers now. */
  partOwners = new Map<string, string>();
  lastEpoch: bigint | null = null;
  roundsSinceFull = 0;
  recoveries = 0;
  lastError = '';
  /**
   * Units adopted from a lost cluster whose pages are still only in its
   * store: every round is full until one commits, which puts them here.
   */
  adopted: AdoptedParts[] = [];
  /** A grid restore built a new record for the job: this one must do nothing more. */
  replaced = false;
  /** Epochs of this job committed in this cluster's store (that a grid round may build on). */
  readonly committedHere = new Set<bigint>();
  /** Nodes declared failed whose units are being moved: they get no lease for this job. */
  readonly lostNodes = new Set<string>();
  /** The next round must be full: adopted pages, or parts laid out anew (partOwners not from our own rounds). */
  needsFull = false;
  /** The gen of the last start (StartJob or Restore) sent to each node: its reports must carry it (core/job-end.ts, E1). */
  readonly startGens = new Map<string, bigint>();
  private readonly driver: RoundDriver;
  /** The grid round this cluster is holding, if any (see gridPrepare). */
  private gridRound: Promise<RoundOutcome> | null = null;
  private readonly prepareWaiters = new Map<bigint, { resolve: (r: { pages: number; bytes: number }) => void; reject: (e: Error) => void }>();
  /** The grid drives this job's rounds (no periodic rounds of the cluster's own). */
  gridManaged = false;
  private gridIncarnation = 0n;
  /** Removes this job's epochs that can no longer commit (the coordinator's business, not the agents'). */
  private readonly sweeper: EpochSweeper;

  constructor(readonly spec: JobSpec, placement: Map<string, string>, roundConfig: RoundConfig, private readonly target: RoundTarget) {
    this.placement = placement;
    for (const node of new Set(placement.values())) this.partOwners.set(node, node);
    this.sweeper = new EpochSweeper(target.storeDir, spec.jobId, target.log);
    this.driver = new RoundDriver(spec.jobId, roundConfig, {
      prepare: (to, epoch, parent, full) => this.sendPrepare(to, epoch, parent, full),
      commit: (to, epoch) => this.sendCommit(to, epoch),
      abort: (to, epoch, reason) => this.sendAbort(to, epoch, reason),
      persist: (p) => this.writeManifest(p),
      onReply: (r) => this.onReply(r),
      onStart: (r) => target.onRoundStarted?.(this, r),
    }, target.runtime, target.log);
  }

  get state(): ClusterJobState {
    return this.stateNow;
  }

  set state(to: ClusterJobState) {
    const from = this.stateNow;
    this.stateNow = to;
    if (from !== to) this.target.onState?.(this, from, to);
  }

  get round(): RoundCoordinator {
    return this.driver.core;
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

  /** Where a node's pages come from on a restore of the last committed state. */
  sourcesFor(nodeId: string): NodeSource[] {
    const out: NodeSource[] = [];
    const own = this.partsFor(nodeId);
    if (this.lastEpoch !== null && own.length > 0) out.push({ storeDir: this.target.storeDir, epoch: this.lastEpoch, parts: own });
    for (const a of this.adopted) {
      const parts = [...a.holders].filter(([, h]) => h === nodeId).map(([w]) => w);
      if (parts.length > 0) out.push({ storeDir: a.storeDir, epoch: a.epoch, parts });
    }
    return out;
  }

  /**
   * A node whose name, as a writer of earlier parts, now stands for another
   * node: until a full epoch, its new parts would be loaded on that node.
   */
  writerElsewhere(nodeId: string): boolean {
    const h = this.partOwners.get(nodeId);
    return h !== undefined && h !== nodeId;
  }

  /** A node failed: whatever it held, the spare now holds. */
  moveHolder(failedNodeId: string, spareNodeId: string): void {
    for (const [writer, holder] of this.partOwners) if (holder === failedNodeId) this.partOwners.set(writer, spareNodeId);
    if (!this.partOwners.has(spareNodeId)) this.partOwners.set(spareNodeId, spareNodeId);
    for (const a of this.adopted) for (const [writer, holder] of a.holders) if (holder === failedNodeId) a.holders.set(writer, spareNodeId);
  }

  specFor(nodeId: string): JobSpec {
    return { ...this.spec, units: this.spec.units.filter((u) => this.placement.get(u.unitId) === nodeId), checkpointIntervalMs: 0, fullEvery: 0 };
  }

  /** Starts a round; resolves with its outcome. */
  async checkpoint(): Promise<RoundOutcome> {
    if (this.round.status().phase !== 'idle') {
      return Promise.reject(new GridError('aborted', `a round of job ${this.jobId} is already running`));
    }
    // After a coordinator restart the round core starts from nothing: build on the store's epochs.
    const highest = this.round.status().highestEpoch;
    const epoch = nextEpoch(this.lastEpoch !== null && this.lastEpoch > highest ? this.lastEpoch : highest);
    const full = this.lastEpoch === null || this.needsFull || this.roundsSinceFull + 1 >= (this.spec.fullEvery || 8);
    return this.driver.start({
      kind: 'start', roundId: `${this.jobId}-${epoch}`, jobId: this.jobId, epoch,
      parentEpoch: full ? null : this.lastEpoch, participants: this.nodes(), full,
    });
  }

  // ---- the cluster as a participant of a grid round ----

  checkGridFence(incarnation: bigint): void {
    if (incarnation < this.gridIncarnation) {
      throw new GridError('failed-precondition', `fenced: grid incarnation ${incarnation} is older than ${this.gridIncarnation}`);
    }
    this.gridIncarnation = incarnation;
  }

  /** Runs this cluster's prepare phase for the grid's epoch and holds. */
  async gridPrepare(epoch: bigint, incarnation: bigint, parentEpoch: bigint | null, full: boolean): Promise<{ pages: number; bytes: number }> {
    this.checkGridFence(incarnation);
    // Completed still takes part: the grid's last round records the job's end state.
    if (this.state !== 'running' && this.state !== 'completed') {
      throw new GridError('failed-precondition', `job ${this.jobId} is ${this.state} in this cluster; it takes part in no round`);
    }
    // The grid runs one round of a job at a time: a held round older than this PREPARE was
    // left by a grid that died (or gave up) before deciding; it is over.
    const held = this.round.status();
    if (held.phase === 'holding' && held.epoch !== null && epoch > held.epoch) {
      this.step({ kind: 'cancel', epoch: held.epoch, reason: `superseded by grid epoch ${epoch}` });
      await this.whenIdle();
    }
    if (this.round.status().phase !== 'idle') {
      throw new GridError('aborted', `a round of job ${this.jobId} is already running`);
    }
    if (epoch <= this.round.status().highestEpoch) {
      throw new GridError('aborted', `stale grid epoch ${epoch}: this cluster is at ${this.round.status().highestEpoch}`);
    }
    // Adopted pages are not in this store yet: only a full epoch holds them. And an epoch can only
    // build on one this store committed (a cluster that joined the job after the grid's last line has none).
    if (this.needsFull || (parentEpoch !== null && !this.committedHere.has(parentEpoch))) full = true;
    const prepared = new Promise<{ pages: number; bytes: number }>((resolve, reject) => this.prepareWaiters.set(epoch, { resolve, reject }));
    this.gridRound = this.driver.start({
      kind: 'start', roundId: `${this.jobId}-grid-${epoch}`, jobId: this.jobId, epoch,
      parentEpoch: full ? null : parentEpoch, participants: this.nodes(), full, holdAfterPrepare: true,
    });
    return prepared;
  }

  /** The grid said COMMIT: finish the round; resolves once this cluster's manifest is written. */
  async gridCommit(epoch: bigint, incarnation: bigint): Promise<void> {
    this.checkGridFence(incarnation);
    const s = this.round.status();
    if (s.epoch !== epoch || s.phase !== 'holding') {
      throw new GridError('failed-precondition', `no prepared round for grid epoch ${epoch} of job ${this.jobId} (${s.phase} at ${s.epoch})`);
    }
    const outcome = this.gridRound!;
    this.step({ kind: 'proceed', epoch });
    const o = await outcome;
    if (o.kind !== 'committed') throw new GridError('aborted', `cluster round ${epoch} aborted in ${o.phase}: ${o.reason}`);
  }

  gridAbort(epoch: bigint, incarnation: bigint, reason: string): void {
    this.checkGridFence(incarnation);
    if (this.round.status().epoch === epoch && this.round.status().phase !== 'idle') this.step({ kind: 'cancel', epoch, reason });
  }

  /** Resolves once no round is running. */
  whenIdle(): Promise<void> {
    return this.driver.whenIdle();
  }

  /** The failure detector's verdict: the round, if any, aborts at once. */
  participantFailed(nodeId: string, reason: string): void {
    this.step({ kind: 'participantFailed', participant: nodeId, reason });
  }

  stop(): void {
    this.driver.stop();
  }

  private step(input: RoundInput): void {
    this.driver.step(input);
  }

  private onReply(reply: RoundReply): void {
    if (reply.kind === 'prepareDone') {
      this.prepareWaiters.get(reply.epoch)?.resolve({ pages: reply.pages, bytes: reply.bytes });
      this.prepareWaiters.delete(reply.epoch);
    } else {
      this.finish(reply);
    }
  }

  private finish(outcome: RoundOutcome): void {
    if (outcome.kind === 'committed') {
      this.lastEpoch = outcome.epoch;
      this.committedHere.add(outcome.epoch);
      this.sweeper.committed(outcome.epoch);
      this.roundsSinceFull = outcome.full ? 0 : this.roundsSinceFull + 1;
      if (outcome.full) {
        // A full epoch holds every container in the part of the node that
        // runs it: from here on each node loads exactly its own parts.
        this.adopted = [];
        this.needsFull = false;
        this.partOwners = new Map(this.nodes().map((n) => [n, n]));
      }
    } else {
      this.lastError = `round ${outcome.epoch} aborted in ${outcome.phase}: ${outcome.reason}`;
    }
    this.target.onOutcome(this, outcome);
    const prep = this.prepareWaiters.get(outcome.epoch);
    if (prep && outcome.kind === 'aborted') prep.reject(new GridError('aborted', `cluster round ${outcome.epoch} aborted in ${outcome.phase}: ${outcome.reason}`));
    this.prepareWaiters.delete(outcome.epoch);
  }

  private fence(epoch: bigint) {
    return { clusterId: this.target.clusterId, nodeId: 'coordinator', incarnation: this.target.incarnation, epoch };
  }

  private agent(nodeId: string): AgentClient {
    const client = this.target.clientOf(nodeId);
    if (!client) throw new Error(`node ${nodeId} is not registered`);
    return client;
  }

  private async sendPrepare(to: string, epoch: bigint, parentEpoch: bigint | null, full: boolean): Promise<PreparedAnswer> {
    const r = await this.agent(to).prepareCheckpoint({ fence: this.fence(epoch), jobId: this.jobId, parentEpoch: parentEpoch ?? 0n, full });
    return { pages: Number(r.pages), bytes: Number(r.bytes), digest: r.digest };
  }

  /** The part's table digest goes to the round core, which checks it against the agent's PREPARED digest. */
  private async sendCommit(to: string, epoch: bigint): Promise<DurableAnswer> {
    const r = await this.agent(to).commitCheckpoint({ fence: this.fence(epoch), jobId: this.jobId });
    const answer: PartAnswer = { part: partInfoFromPb(r.part!), containers: r.containers };
    return { part: answer, digest: answer.part.tableDigest };
  }

  private async sendAbort(to: string, epoch: bigint, reason: string): Promise<void> {
    await this.agent(to).abortCheckpoint({ fence: this.fence(epoch), jobId: this.jobId, reason });
  }

  private async writeManifest(p: WriteManifestAction): Promise<void> {
    const answers = p.parts.map((x) => x.part as PartAnswer);
    await commitEpoch({
      storeDir: this.target.storeDir,
      jobId: p.jobId,
      epoch: p.epoch,
      parentEpoch: p.parentEpoch,
      full: p.full,
      createdUnixMs: this.target.runtime.clock.wallMs(),
      containers: answers.flatMap((a) => a.containers),
      parts: answers.map((a) => a.part),
      // placement and partOwners let another cluster adopt these units (core/adoption.ts).
      // A full epoch's chain is its own parts: each node holds exactly what it wrote.
      layout: {
        spec: storedSpecOf(this.spec), placement: Object.fromEntries(this.placement),
        partOwners: Object.fromEntries(p.full ? this.nodes().map((n) => [n, n]) : this.partOwners),
      },
    });
  }
}

