import type { Logger } from '../common/log.js';
import type { TierRuntime } from '../wire/clients.js';
import { repeat, sleep, type Repeating } from '../runtime/timers.js';
import { runFinalRound } from '../protocol/final-round.js';
import type { GridJob } from './grid-job.js';
import { judgeShares, type ShareReport } from './core/shares.js';
import type { GridClusterEntry } from './coordinator.js';

// Arming a grid job in the grid coordinator: its periodic grid rounds, and
// looks at its shares in each of its clusters (on a cluster's job event, a
// resubscribed stream, and whenever the job is armed or running again). A
// look acts on the shares' states (core/shares.ts): a share lost or fenced
// starts a recovery, and once every share completed a final round records
// the job's end. Owned by the coordinator, which passes what it needs
// explicitly (GridJobWatchHost).

/** What the watch needs of the grid coordinator. */
export interface GridJobWatchHost {
  readonly runtime: TierRuntime;
  readonly log: Logger;
  readonly clusters: ReadonlyMap<string, GridClusterEntry>;
  readonly jobs: ReadonlyMap<string, GridJob>;
  recoverSoon(job: GridJob, reason: string): void;
  saveJob(job: GridJob): void;
}

/** A look at a job's clusters that failed (a status call) is tried again after this, doubling up to MAX. */
const LOOK_RETRY_MS = 250;
const LOOK_RETRY_MAX_MS = 4_000;

export class GridJobWatch {
  private readonly timers = new Map<string, Repeating[]>();
  /** Per job: a look is running, and whether another must follow it (something happened meanwhile). */
  private readonly looking = new Map<string, { again: boolean; retryMs: number }>();

  constructor(private readonly g: GridJobWatchHost) {}

  arm(job: GridJob): void {
    const every = repeat(this.g.runtime.timers, job.spec.checkpointIntervalMs, () => {
      if (job.state !== 'running' || job.core.status().phase !== 'idle') return;
      job.checkpoint().catch((err: unknown) => this.g.log.warn({ jobId: job.jobId, err: String(err) }, 'grid round not started'));
    });
    this.timers.set(job.jobId, [every]);
    // A share that ended before this instant was reported to no one.
    this.lookAt(job);
  }

  disarm(job: GridJob): void {
    for (const t of this.timers.get(job.jobId) ?? []) t.stop();
    this.timers.delete(job.jobId);
  }

  /**
   * Reads the job's state in each of its clusters and acts on it; called when
   * a cluster pushes a job event, when a cluster's stream is (re)subscribed,
   * and when the job is armed or running again. One look at a time per job;
   * a call meanwhile makes another follow. A look that could not read every
   * cluster is tried again a little later.
   */
  lookAt(job: GridJob): void {
    if (!this.timers.has(job.jobId) || job.state !== 'running') return;
    const busy = this.looking.get(job.jobId);
    if (busy) {
      busy.again = true;
      return;
    }
    const state = { again: false, retryMs: LOOK_RETRY_MS };
    this.looking.set(job.jobId, state);
    void (async () => {
      do {
        state.again = false;
        if (!(await this.checkCompletion(job)) && this.timers.has(job.jobId) && job.state === 'running') {
          await sleep(this.g.runtime.timers, state.retryMs);
          state.retryMs = Math.min(state.retryMs * 2, LOOK_RETRY_MAX_MS);
          state.again = true;
        }
      } while (state.again && this.timers.has(job.jobId) && job.state === 'running' && this.g.jobs.get(job.jobId) === job);
      this.looking.delete(job.jobId);
    })();
  }

  /** One look; false when a cluster could not be read (it is looked at again). */
  private async checkCompletion(job: GridJob): Promise<boolean> {
    if (job.state !== 'running') return true;
    const { g } = this;
    try {
      const states: ShareReport[] = await Promise.all(job.clusterIds().map(async (clusterId) => {
        const client = g.clusters.get(clusterId)?.client;
        if (!client) return { clusterId, state: 'unregistered', lastError: '' };
        const share = (await client.status()).jobs.find((j) => j.jobId === job.jobId);
        return { clusterId, state: share?.state ?? 'missing', lastError: share?.lastError ?? '' };
      }));
      if (job.state !== 'running') return true;
      const verdict = judgeShares(states);
      switch (verdict.kind) {
        case 'wait':
          return true;
        case 'lose':
          // A share its cluster could not recover is lost, as if the cluster were: its units move.
          g.log.warn({ jobId: job.jobId, clusters: verdict.clusters, reason: verdict.reason }, 'a cluster failed its share of the job: recovering it elsewhere');
          for (const id of verdict.clusters) job.loseShare(id, g.runtime.clock.nowMs());
          job.lastError = verdict.reason;
          job.participantFailed(verdict.clusters[0]!, verdict.reason);
          g.recoverSoon(job, verdict.reason);
          return true;
        case 'rollback':
          // Nothing runs there (its lease lapsed, or it restarted while this grid was away): roll the whole job back to its line.
          job.rollback = true;
          job.lastError = verdict.reason;
          job.participantFailed(states.find((x) => x.state === 'fenced' || x.state === 'missing')!.clusterId, verdict.reason);
          g.log.warn({ jobId: job.jobId, reason: verdict.reason }, 'rolling the job back to its last recovery line');
          g.recoverSoon(job, verdict.reason);
          return true;
        case 'completed':
          break;
      }
      this.disarm(job);
      // Completed only with the end state on a committed line (core/final-round.ts).
      const end = await runFinalRound(g.runtime.timers, () => job.checkpointNext(), () => job.state === 'running');
      if (end === null) {
        // A recovery took over (a cluster was lost meanwhile): watch for the end again once it is done.
        if (job.state === 'running' || job.state === 'recovering') this.arm(job);
        return true;
      }
      if (end.kind === 'completed') {
        job.state = 'completed';
        g.log.info({ jobId: job.jobId, last: String(end.epoch) }, 'grid job completed');
      } else {
        job.state = 'failed';
        job.lastError = end.reason;
        g.log.error({ jobId: job.jobId, err: end.reason }, 'grid job failed: its final state is not checkpointed');
      }
      g.saveJob(job);
      return true;
    } catch (err) {
      // A cluster that does not answer for good is the detector's business; until then, look again.
      g.log.debug({ jobId: job.jobId, err: String(err) }, 'could not read a cluster\'s job state');
      return false;
    }
  }
}
