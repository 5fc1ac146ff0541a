import type { Logger } from '../common/log.js';
import { listCommitted, retireEpoch } from '../store/index.js';
import { RetentionCore, type EpochFacts, type RetentionAction, type RetentionInput, type RetentionPolicy } from './core/retention.js';

// The shell of garbage collection (the decision is the pure RetentionCore,
// core/retention.ts): it feeds the core the cluster's commits and the grid's
// restores, learns a job's epochs from the store the first time it sees the
// job, and performs each retirement the core asks for with the store's
// crash-safe protocol (src/store/epoch-retire.ts), one at a time, off the
// rounds' path — a round never waits for a deletion. Every input goes
// through one promise chain, so the core is never re-entered mid-step.
// A crash anywhere loses nothing retained: the core is rebuilt from the store
// by the next incarnation, and what a retirement left half done is an
// uncommitted epoch that EpochSweeper (or the next retirement) removes.

/** Inputs waiting behind the one in progress: past it, a commit's facts are dropped (the core then keeps more, never less). */
export const MAX_COLLECTOR_BACKLOG = 1_024;

export interface CollectorHooks {
  /** A retirement finished (the cluster's core forgets the epoch as a restore point). */
  retired(jobId: string, epoch: bigint): void;
  /** A retirement failed (an environment failure: the epoch stays). */
  failed(jobId: string, epoch: bigint, reason: string): void;
}

export class EpochCollector {
  readonly core: RetentionCore;
  private tail: Promise<void> = Promise.resolve();
  private backlog = 0;
  private stopped = false;

  constructor(
    private readonly storeDir: string,
    private readonly wallMs: () => number,
    private readonly log: Logger,
    private readonly hooks: CollectorHooks,
    maxJobs: number,
  ) {
    this.core = new RetentionCore({ maxJobs });
  }

  /** Epoch `facts.epoch` of the job committed (its manifest is in place). */
  committed(jobId: string, facts: Omit<EpochFacts, 'committedAtMs'>, gridManaged: boolean, policy: RetentionPolicy): void {
    const committedAtMs = this.wallMs();
    this.enqueue(async () => {
      if (!this.core.knows(jobId)) {
        // The first commit this incarnation sees: the store's other epochs, as they are on disk.
        const found = await listCommitted(this.storeDir, jobId);
        const epochs = found.filter((m) => m.epoch !== facts.epoch).map((m) => ({ epoch: m.epoch, parentEpoch: m.parentEpoch, full: m.full, committedAtMs: m.createdUnixMs }));
        await this.apply({ kind: 'jobKnown', jobId, gridManaged, policy, epochs });
      } else {
        await this.apply({ kind: 'jobKnown', jobId, gridManaged, policy, epochs: [] }); // a changed policy
      }
      await this.apply({ kind: 'committed', jobId, facts: { ...facts, committedAtMs } });
    });
  }

  /**
   * Collects a job from what its store holds, without a commit (the offline `gridckpt gc`): every committed
   * epoch counts, as for a job the cluster runs on its own. Never for a grid job the grid may still restore.
   */
  collectStored(jobId: string, policy: RetentionPolicy): void {
    this.enqueue(async () => {
      const found = await listCommitted(this.storeDir, jobId);
      const epochs = found.map((m) => ({ epoch: m.epoch, parentEpoch: m.parentEpoch, full: m.full, committedAtMs: m.createdUnixMs }));
      await this.apply({ kind: 'jobKnown', jobId, gridManaged: false, policy, epochs });
    });
  }

  gridLine(jobId: string, epoch: bigint): void {
    this.enqueue(() => this.apply({ kind: 'gridLine', jobId, epoch }));
  }

  gridRestored(jobId: string, epoch: bigint | null): void {
    this.enqueue(() => this.apply({ kind: 'gridRestored', jobId, epoch }));
  }

  /** Resolves once every input so far has been handled (tests, shutdown). */
  idle(): Promise<void> {
    return this.tail;
  }

  stop(): void {
    this.stopped = true;
  }

  private enqueue(work: () => Promise<void>): void {
    if (this.backlog >= MAX_COLLECTOR_BACKLOG) {
      this.log.warn({ backlog: this.backlog }, 'garbage collection is behind: an input is dropped (it keeps more epochs, never fewer)');
      return;
    }
    this.backlog += 1;
    this.tail = this.tail.then(async () => {
      try {
        if (!this.stopped) await work();
      } catch (err) {
        // An environment failure reading the store: the next commit tries again.
        this.log.warn({ err: String(err) }, 'garbage collection failed');
      } finally {
        this.backlog -= 1;
      }
    });
  }

  /** Steps the core and performs what it asks, until it asks nothing more. */
  private async apply(input: RetentionInput): Promise<void> {
    let actions = this.core.step(input, this.wallMs());
    this.core.checkInvariants();
    while (actions.length > 0 && !this.stopped) {
      const next: RetentionAction[] = [];
      for (const a of actions) next.push(...(await this.retire(a)));
      actions = next;
    }
  }

  private async retire(a: RetentionAction): Promise<RetentionAction[]> {
    let out: RetentionAction[];
    try {
      const result = await retireEpoch(this.storeDir, a.jobId, a.epoch);
      this.log.info({ jobId: a.jobId, epoch: String(a.epoch), result }, 'retired epoch');
      out = this.core.step({ kind: 'retired', jobId: a.jobId, epoch: a.epoch }, this.wallMs());
      this.hooks.retired(a.jobId, a.epoch);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.log.warn({ jobId: a.jobId, epoch: String(a.epoch), err: reason }, 'retiring an epoch failed; the next commit tries again');
      out = this.core.step({ kind: 'retireFailed', jobId: a.jobId, epoch: a.epoch, reason }, this.wallMs());
      this.hooks.failed(a.jobId, a.epoch, reason);
    }
    this.core.checkInvariants();
    return out;
  }
}
