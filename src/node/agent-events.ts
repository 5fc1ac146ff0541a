import type { NewEvent } from '../runtime/event-hub.js';
import type { PrepareResult, CommitResult } from './step-results.js';
import type { EpochManifest } from '../store/index.js';
import type { RestoreResult } from './restore-runner.js';

// What the node agent tells its Watch readers: its jobs' states, its part in
// each round (prepared, durable, aborted), its own local checkpoints,
// restores, and the containers its units create (a job's memory appearing
// changes its status: a reader waiting for it hears of it). The subject is
// this node for job events, the epoch for rounds, the container's name for
// containers.

export interface EventSink {
  emit(e: NewEvent): void;
}

export class AgentWatch {
  constructor(private readonly sink: EventSink | undefined, private readonly nodeId: string) {}

  job(jobId: string, from: string, to: string, detail: string): void {
    if (from !== to) this.sink?.emit({ kind: 'job', jobId, subject: this.nodeId, from, to, detail: `job ${jobId} on ${this.nodeId}: ${detail}` });
  }

  /** A unit created a container (at most maxContainersPerJob a job). */
  containerCreated(jobId: string, unitId: string, name: string, pageCount: number): void {
    this.sink?.emit({ kind: 'container', jobId, subject: name, to: 'created', detail: `unit ${unitId} of job ${jobId} created container ${name} (${pageCount} pages) on ${this.nodeId}` });
  }

  /** A start or restore refused by the core (one that came too late among them: no lease binds that its caller never counted). */
  startRefused(jobId: string, reason: string): void {
    this.sink?.emit({ kind: 'job', jobId, subject: this.nodeId, from: '', to: 'refused', detail: `start of job ${jobId} on ${this.nodeId} refused: ${reason}` });
  }

  prepared(jobId: string, r: PrepareResult): void {
    const staged = r.readOnly ? 'nothing changed: voted read-only, its empty part is durable (no COMMIT needed)' : `${r.pages} pages, ${r.bytes} bytes staged`;
    this.round(jobId, r.epoch, 'prepared', `epoch ${r.epoch} prepared: ${staged}; frozen ${r.freezeWindowMs.toFixed(2)} ms`);
  }

  durable(jobId: string, r: CommitResult, readOnly = false): void {
    const how = readOnly ? 'with its read-only vote, no COMMIT needed' : `${r.writeMs.toFixed(1)} ms`;
    this.round(jobId, r.epoch, 'durable', `epoch ${r.epoch}: this node's part is durable (${how}); committed once the coordinator writes the manifest`);
  }

  stepFailed(jobId: string, epoch: bigint, step: 'prepare' | 'commit', err: unknown): void {
    this.round(jobId, epoch, 'failed', `${step} of epoch ${epoch} failed: ${err instanceof Error ? err.message : String(err)}`, step);
  }

  aborted(jobId: string, epoch: bigint, reason: string, dropped: boolean): void {
    this.round(jobId, epoch, 'aborted', `epoch ${epoch} aborted by the coordinator (${dropped ? 'staging dropped' : 'nothing staged'}): ${reason}`);
  }

  checkpointed(jobId: string, m: EpochManifest, freezeWindowMs: number): void {
    this.round(jobId, m.epoch, 'committed', `local epoch ${m.epoch} committed (${m.parentEpoch === null ? 'full' : `incremental on ${m.parentEpoch}`}); frozen ${freezeWindowMs.toFixed(2)} ms`);
  }

  restoreStarted(jobId: string, epoch: bigint | null): void {
    this.sink?.emit({ kind: 'recovery', jobId, subject: this.nodeId, to: 'started', epoch: epoch ?? 0n, detail: `restoring job ${jobId} from epoch ${epoch ?? 'latest'}` });
  }

  restored(jobId: string, r: RestoreResult): void {
    const skipped = r.skipped.map((s) => ` (skipped ${s.epoch}: ${s.reason})`).join('');
    this.sink?.emit({
      kind: 'recovery', jobId, subject: this.nodeId, from: 'started', to: 'done', epoch: r.manifest.epoch,
      detail: `job ${jobId} restored from epoch ${r.manifest.epoch}: ${r.pagesLoaded} pages loaded, units restarted${skipped}`,
    });
  }

  restoreFailed(jobId: string, err: unknown): void {
    this.sink?.emit({ kind: 'recovery', jobId, subject: this.nodeId, from: 'started', to: 'failed', detail: `restore of job ${jobId} failed: ${err instanceof Error ? err.message : String(err)}` });
  }

  private round(jobId: string, epoch: bigint, to: string, detail: string, from = ''): void {
    this.sink?.emit({ kind: 'round', jobId, subject: String(epoch), from, to, epoch, detail });
  }
}
