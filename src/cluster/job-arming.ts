import { assert } from '../common/errors.js';
import { repeat, type Repeating } from '../runtime/timers.js';
import { runFinalRound } from '../protocol/final-round.js';
import { EndWatch, type EndDecision, type JobReport } from './core/job-end.js';
import type { ClusterJob } from './cluster-job.js';
import type { ClusterCoordinator } from './coordinator.js';
import { isLive } from './job-recovery.js';

// Arming a job in the cluster coordinator: its periodic rounds, and the watch
// for its end on the agents' reports (push, not poll). Each start sent to an
// agent names a gen (nextStartGen); an EndWatch per arming of a job judges
// the reports tagged with it (core/job-end.ts), and the decisions are acted
// on here: a restore for a lost or fenced share, a final round and the
// job's end once every unit completed. Owned by the coordinator (arm,
// disarm, nextStartGen and the reports go through it).

export class JobArming {
  private readonly timers = new Map<string, Repeating>();
  private readonly generation = new Map<string, number>();
  /** The end watch of each armed job (one per arming: see arm). */
  private readonly endWatches = new Map<string, { job: ClusterJob; gen: number; end: EndWatch }>();
  /** Starts sent to agents by this incarnation (see nextStartGen). */
  private startsSent = 0;

  constructor(private readonly c: ClusterCoordinator) {}

  /** Periodic rounds, and a watch for the end of the job on every node. */
  arm(job: ClusterJob): void {
    this.disarm(job);
    const every = job.gridManaged ? 0 : job.spec.checkpointIntervalMs;
    if (every > 0) {
      this.timers.set(job.jobId, repeat(this.c.runtime.timers, every, () => {
        if (job.state !== 'running' || job.round.status().phase !== 'idle') return;
        job.checkpoint().catch((err: unknown) => this.c.log.warn({ jobId: job.jobId, err: String(err) }, 'round not started'));
      }));
    }
    const gen = (this.generation.get(job.jobId) ?? 0) + 1;
    this.generation.set(job.jobId, gen);
    // The end of this start comes with the nodes' heartbeats (onJobReports).
    this.endWatches.set(job.jobId, { job, gen, end: new EndWatch(job.nodes(), job.startGens) });
  }

  disarm(job: ClusterJob): void {
    this.stopTimer(job);
    // A final round under way ends at its next look; reports wait for the next arming.
    this.generation.set(job.jobId, (this.generation.get(job.jobId) ?? 0) + 1);
    if (this.endWatches.get(job.jobId)?.job === job) this.endWatches.delete(job.jobId);
  }

  /** Names each start sent to an agent (StartJob/Restore gen): this incarnation above, a count below, so no two starts share one (E1). */
  nextStartGen(): bigint {
    this.startsSent += 1;
    const { incarnation } = this.c.settings;
    assert(this.startsSent < 2 ** 32 && incarnation < 2n ** 31n, `start gen out of range: incarnation ${incarnation}, start ${this.startsSent}`);
    return (incarnation << 32n) | BigInt(this.startsSent);
  }

  private stopTimer(job: ClusterJob): void {
    const t = this.timers.get(job.jobId);
    t?.stop();
    this.timers.delete(job.jobId);
  }

  /** A node's reports on its jobs: each armed job on the node judges its own (core/job-end.ts). */
  onJobReports(nodeId: string, reports: readonly JobReport[], full: boolean): void {
    const byJob = new Map(reports.map((r) => [r.jobId, r]));
    for (const w of [...this.endWatches.values()]) {
      if (!w.end.nodes.includes(nodeId) || !this.isWatched(w.job, w.gen)) continue;
      const d = w.end.onBeat(nodeId, byJob.get(w.job.jobId) ?? null, full);
      this.onEndDecision(w.job, w.gen, d);
    }
  }

  private onEndDecision(job: ClusterJob, gen: number, d: EndDecision): void {
    switch (d.kind) {
      case 'none':
        return;
      case 'stale':
        this.c.log.debug({ jobId: job.jobId, node: d.nodeId, reportedGen: String(d.reportedGen), startGen: String(d.startGen) }, 'report on an earlier start of the job ignored');
        return;
      case 'lost':
        this.c.recoverSoon(job, d.nodeId, false, `the agent on ${d.nodeId} restarted and lost the job`);
        return;
      case 'fenced':
        // Its lease lapsed (this coordinator was away, or could not reach it): restore the job where it is.
        if (!job.gridManaged || this.c.gridLeases.leases.isBound(job.jobId)) this.c.recoverSoon(job, d.nodeId, false, `the units on ${d.nodeId} were fenced`);
        return;
      case 'ended':
        this.c.log.warn({ jobId: job.jobId, node: d.nodeId, err: `units on ${d.nodeId} ended ${d.state}: ${d.lastError}` }, 'the job\'s units ended without completing; a recovery will take over if a node failed');
        return;
      case 'all-completed':
        void this.finishJob(job, gen);
        return;
    }
  }

  /** This arming of the job is still the one in force. */
  private isWatched(job: ClusterJob, gen: number): boolean {
    return this.generation.get(job.jobId) === gen && job.state === 'running' && isLive(this.c, job);
  }

  /** Every unit of the job completed: a final round records the end state, then the job is completed (or failed). */
  private async finishJob(job: ClusterJob, gen: number): Promise<void> {
    const current = () => this.isWatched(job, gen);
    const { log } = this.c;
    try {
      this.stopTimer(job);
      // A last round records the job's end state (after any periodic one still running); a grid job's is the grid's.
      await job.whenIdle();
      if (!current()) return;
      const end = job.gridManaged ? null : await runFinalRound(this.c.runtime.timers, () => job.checkpoint(), current);
      if (!current()) return;
      // Completed only with the end state in a committed epoch (core/final-round.ts).
      if (end?.kind === 'not-checkpointed') {
        job.state = 'failed';
        job.lastError = end.reason;
        log.error({ jobId: job.jobId, lastEpoch: String(job.lastEpoch), err: end.reason }, 'job failed: its final state is not checkpointed');
      } else {
        job.state = 'completed';
        log.info({ jobId: job.jobId, lastEpoch: String(job.lastEpoch), finalRound: end ? String(end.epoch) : 'the grid\'s' }, 'job completed');
      }
      this.c.persist(job);
    } catch (err) {
      if (current()) log.warn({ jobId: job.jobId, err: String(err) }, 'the final round of the job failed; a recovery will take over if a node failed');
    }
  }
}
