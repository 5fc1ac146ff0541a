import { storedSpecOf } from '../store/index.js';
import { GridError } from '../common/errors.js';
import { failpoint } from '../common/failpoints.js';
import type { Logger } from '../common/log.js';
import { nextEpoch, type RoundConfig, type RoundOutcome, type WriteManifestAction, type StartInput } from '../protocol/core/round.js';
import { RoundDriver } from '../protocol/round-driver.js';
import type { ClusterClient } from '../wire/cluster-client.js';
import type { TierRuntime } from '../wire/clients.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import type { GridCatalog, RecoveryLine } from './catalog.js';

// A job of the grid: which cluster runs which unit, and its coordinated grid
// rounds — the same round core one level up (ARCHITECTURE §6, coordinated):
// PREPARE makes each cluster run its own prepare phase and hold; COMMIT makes
// each finish its round (its manifest written); the grid's decision is the
// recovery line appended to the catalog.

export type GridJobState = 'running' | 'recovering' | 'completed' | 'failed';

export interface GridTarget {
  gridId: string;
  incarnation: bigint;
  /** The round driver's clock and timers, and the lines' wall-clock stamps. */
  runtime: TierRuntime;
  catalog: GridCatalog;
  clusterOf(clusterId: string): ClusterClient | null;
  log: Logger;
  onOutcome(outcome: RoundOutcome): void;
  /** Every change of the job's state, wherever it is made (for Watch readers). */
  onState?(job: GridJob, from: GridJobState, to: GridJobState): void;
  onRoundStarted?(job: GridJob, round: StartInput): void;
}

export class GridJob {
  private stateNow: GridJobState = 'running';
  lastError = '';
  recoveries = 0;
  /** Clusters lost and not yet recovered from: they get no lease for this job. */
  readonly lost = new Set<string>();
  /** Clusters alive but whose share failed (lost for this job only) → when it stopped being named to them. */
  readonly shareLostAtMs = new Map<string, number>();
  /** The whole job must roll back to its line even if no cluster is lost (a share was fenced). */
  rollback = false;
  private roundsSinceFull = 0;
  private readonly driver: RoundDriver;

  constructor(readonly spec: JobSpec, public clusters: Map<string, string>, config: RoundConfig, private readonly target: GridTarget) {
    this.driver = new RoundDriver(spec.jobId, config, {
      prepare: async (to, epoch, parent, full) => {
        const r = await this.cluster(to).prepareRound({ fence: this.fence(epoch), jobId: this.jobId, parentEpoch: parent ?? 0n, full });
        // A cluster's share has no one digest: its agents' are checked by its own round.
        return { pages: Number(r.pages), bytes: Number(r.bytes), digest: '' };
      },
      commit: async (to, epoch) => {
        failpoint('grid.before-commit'); // crash tests: every cluster prepared and holding, no decision sent
        return { part: (await this.cluster(to).commitRound({ fence: this.fence(epoch), jobId: this.jobId })).epoch, digest: '' };
      },
      abort: async (to, epoch, reason) => {
        await this.cluster(to).abortRound({ fence: this.fence(epoch), jobId: this.jobId, reason });
      },
      persist: (p) => this.recordLine(p),
      onReply: (r) => {
        if (r.kind === 'prepareDone') return;
        if (r.kind === 'aborted') this.lastError = `grid round ${r.epoch} aborted in ${r.phase}: ${r.reason}`;
        else this.roundsSinceFull = r.full ? 0 : this.roundsSinceFull + 1;
        this.target.onOutcome(r);
      },
      onStart: (r) => target.onRoundStarted?.(this, r),
    }, target.runtime, target.log);
  }

  get state(): GridJobState {
    return this.stateNow;
  }

  set state(to: GridJobState) {
    const from = this.stateNow;
    this.stateNow = to;
    if (from !== to) this.target.onState?.(this, from, to);
  }

  get jobId(): string {
    return this.spec.jobId;
  }

  get core() {
    return this.driver.core;
  }

  clusterIds(): string[] {
    return [...new Set(this.clusters.values())].sort();
  }

  /** What the catalog keeps of this job. */
  record() {
    return {
      spec: storedSpecOf(this.spec), clusters: Object.fromEntries(this.clusters), state: this.state, recoveries: this.recoveries,
      lastError: this.lastError, lost: [...this.lost],
    };
  }

  specFor(clusterId: string): JobSpec {
    return { ...this.spec, units: this.spec.units.filter((u) => this.clusters.get(u.unitId) === clusterId), checkpointIntervalMs: 0 };
  }

  async checkpoint(): Promise<RoundOutcome> {
    if (this.core.status().phase !== 'idle') return Promise.reject(new GridError('aborted', `a grid round of job ${this.jobId} is already running`));
    const last = this.target.catalog.latest(this.jobId);
    const epoch = nextEpoch(this.core.status().highestEpoch > (last?.gridEpoch ?? 0n) ? this.core.status().highestEpoch : (last?.gridEpoch ?? 0n));
    // Every cluster builds on the epoch of the grid's last line; a full epoch now and then bounds the chains.
    const full = last === null || this.roundsSinceFull + 1 >= (this.spec.fullEvery || 8);
    return this.driver.start({ kind: 'start', roundId: `${this.jobId}-g${epoch}`, jobId: this.jobId, epoch, parentEpoch: full ? null : last!.gridEpoch, participants: this.clusterIds(), full });
  }

  /** Resolves once no grid round is running. */
  whenIdle(): Promise<void> {
    return this.driver.whenIdle();
  }

  /** The operator's round: after the one running, if any. */
  async checkpointNext(): Promise<RoundOutcome> {
    for (;;) {
      await this.whenIdle();
      if (this.core.status().phase === 'idle') return this.checkpoint();
    }
  }

  /** A cluster could not recover its share: lost for this job from nowMs (no lease names it from now on). */
  loseShare(clusterId: string, nowMs: number): void {
    this.lost.add(clusterId);
    if (!this.shareLostAtMs.has(clusterId)) this.shareLostAtMs.set(clusterId, nowMs);
  }

  participantFailed(clusterId: string, reason: string): void {
    this.driver.step({ kind: 'participantFailed', participant: clusterId, reason });
  }

  stop(): void {
    this.driver.stop();
  }

  private cluster(id: string): ClusterClient {
    const c = this.target.clusterOf(id);
    if (!c) throw new Error(`cluster ${id} is not registered`);
    return c;
  }

  private fence(epoch: bigint) {
    return { clusterId: this.target.gridId, nodeId: 'grid', incarnation: this.target.incarnation, epoch };
  }

  private async recordLine(p: WriteManifestAction): Promise<void> {
    const line: RecoveryLine = {
      jobId: p.jobId,
      gridEpoch: p.epoch,
      clusterEpochs: Object.fromEntries(p.parts.map((x) => [x.participant, x.part as bigint])),
      committedUnixMs: this.target.runtime.clock.wallMs(),
      // Every cluster of the round committed its units' pages in its own store.
      unitClusters: Object.fromEntries(this.clusters),
    };
    await this.target.catalog.append(line);
  }
}
