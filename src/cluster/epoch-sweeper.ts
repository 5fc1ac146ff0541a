import type { Logger } from '../common/log.js';
import { removeIncomplete } from '../store/index.js';

// Removes one job's incomplete epochs (aborted rounds, crash leftovers) from
// the cluster store. The coordinator sweeps, not the agents: it alone decides
// commits, so it alone knows which epochs can no longer commit. After epoch E
// commits, every epoch below E without a manifest is such an epoch: the
// coordinator never commits below an epoch it committed (commitEpoch refuses
// to), and every agent of E's round has finished writing older epochs (an
// agent runs one round step per job at a time and refuses a PREPARE not above
// every epoch it prepared). A node that left the job may still finish a part
// of an older, aborted epoch: its write fails or leaves a directory no
// manifest will name, and a later sweep removes it. Epochs at or above E —
// the next round's — are never touched, and the store's removal cannot take
// a committed epoch even if a commit races it (src/store/epoch-removal.ts).

export class EpochSweeper {
  private running: Promise<void> | null = null;
  /** The newest committed epoch not swept below yet. */
  private pending: bigint | null = null;

  constructor(private readonly storeDir: string, private readonly jobId: string, private readonly log: Logger) {}

  /** Epoch `epoch` committed: sweep below it, off the round's path; one sweep at a time. */
  committed(epoch: bigint): void {
    if (this.pending === null || epoch > this.pending) this.pending = epoch;
    this.running ??= this.drain();
  }

  private async drain(): Promise<void> {
    try {
      for (let below = this.pending; below !== null; below = this.pending) {
        this.pending = null;
        try {
          const removed = await removeIncomplete(this.storeDir, this.jobId, { below });
          if (removed.length > 0) this.log.info({ jobId: this.jobId, epochs: removed.map(String), below: String(below) }, 'removed incomplete epochs');
        } catch (err) {
          // An environment failure: the next commit sweeps again.
          this.log.warn({ jobId: this.jobId, err: String(err) }, 'sweeping incomplete epochs failed');
        }
      }
    } finally {
      this.running = null;
    }
  }
}
