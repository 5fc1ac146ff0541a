import { describeSkipped } from '../store/restorable.js';
import type { ClusterJob } from './cluster-job.js';
import type { ClusterCoordinator } from './coordinator.js';
import { recoverNodes } from './node-recovery.js';

// The cluster coordinator's recovery sequencing: one recovery of a job at a
// time, each restoring the job from its last committed epoch (the steps are
// in node-recovery.ts), and the fence of a grid job whose grid lease lapsed,
// which overtakes any recovery under way. Owned by the coordinator
// (recoverSoon, fenceGridJob and stopOn go through it).

/** The job's record is the current one and not fenced (a grid restore or a lapsed grid lease ends it). */
export function isLive(c: ClusterCoordinator, job: ClusterJob): boolean {
  return !job.replaced && c.jobs.get(job.jobId) === job && job.state !== 'fenced';
}

export class JobRecoveries {
  private readonly recoveries = new Map<string, Promise<void>>();

  constructor(private readonly c: ClusterCoordinator) {}

  /**
   * Restores the job from its last committed epoch, one recovery of a job at
   * a time. move: the node is failed, its units go to a spare; otherwise
   * (its units were fenced, or its agent restarted) they stay where they are.
   */
  recoverSoon(job: ClusterJob, nodeId: string, move: boolean, reason: string): void {
    if (!isLive(this.c, job)) return;
    job.state = 'recovering';
    if (move) job.lostNodes.add(nodeId);
    this.c.disarm(job);
    job.participantFailed(nodeId, reason);
    this.c.events.recoveryStarted?.(job.jobId, nodeId, reason);
    const prev = this.recoveries.get(job.jobId) ?? Promise.resolve();
    this.recoveries.set(job.jobId, prev.then(() => this.recover(job, nodeId, reason)));
  }

  private async recover(job: ClusterJob, nodeId: string, reason: string): Promise<void> {
    const { c } = this;
    if (!isLive(c, job) || job.state !== 'recovering') return;
    const t0 = c.runtime.clock.nowMs();
    const current = () => isLive(c, job) && job.state === 'recovering';
    try {
      // A round in its last step settles first: lastEpoch must be what the store holds.
      await job.whenIdle();
      const r = current() ? await recoverNodes(c, job, current) : null;
      if (r === null || !current()) return this.stopIfFenced(job);
      job.recoveries += 1;
      for (const m of r.moved) job.lostNodes.delete(m.from);
      // What was restored, and which newer epochs it passed over (invariant 6: say which).
      if (r.skipped.length > 0) job.lastError = `recovered at epoch ${r.epoch} after passing over ${describeSkipped(r.skipped)}`;
      job.state = 'running';
      c.arm(job);
      c.persist(job);
      const ms = c.runtime.clock.nowMs() - t0;
      c.log.warn({
        jobId: job.jobId, reason, moved: r.moved, epoch: String(r.epoch), skipped: r.skipped.map((x) => ({ epoch: String(x.epoch), reason: x.reason })),
        attempts: r.attempts, leaseWaitMs: Math.round(r.leaseWaitMs), ms,
      }, 'job recovered');
      c.events.recovered(job.jobId, ms, true);
    } catch (err) {
      if (!isLive(c, job)) return this.stopIfFenced(job);
      job.state = 'failed';
      job.lastError = `recovery (${reason}) failed: ${err instanceof Error ? err.message : String(err)}`;
      c.persist(job);
      c.log.error({ jobId: job.jobId, err: job.lastError }, 'recovery failed');
      c.events.recovered(job.jobId, c.runtime.clock.nowMs() - t0, false);
    }
  }

  /** A recovery overtaken by a fence: whatever it started must not run on. */
  private async stopIfFenced(job: ClusterJob): Promise<void> {
    if (job.state !== 'fenced' && !job.replaced) return;
    await this.stopOn(job.jobId, job.nodes());
  }

  /** Stops the job's units on these nodes, best effort: a node gone or unreachable is its lease's business. */
  async stopOn(jobId: string, nodes: readonly string[]): Promise<void> {
    await Promise.all(nodes.map((n) => this.c.nodes.get(n)?.client.stopJob({ jobId }).catch(() => undefined)));
  }

  /**
   * The grid stopped renewing this job's lease: the grid may be running its
   * units elsewhere by now. Stop them here; the agents' own leases lapse
   * anyway, since the job is no longer named in their heartbeat answers.
   */
  async fenceGridJob(jobId: string): Promise<void> {
    const { c } = this;
    const job = c.jobs.get(jobId);
    if (!job || (job.state !== 'running' && job.state !== 'recovering')) return;
    job.state = 'fenced';
    job.lastError = `fenced: the grid's lease on job ${jobId} lapsed, so its units here were stopped`;
    c.disarm(job);
    job.stop();
    c.log.warn({ jobId }, 'grid lease lapsed: stopping the job here');
    c.events.jobFenced(jobId);
    c.persist(job);
    await this.stopOn(jobId, job.nodes());
  }
}
