import { GridError } from '../common/errors.js';

// The seed's approach II B: while a job's units are frozen for a checkpoint,
// the agent starts no new page operation for that job. A request that
// arrives then waits in a bounded queue and runs, in arrival order, once the
// gate opens; none is lost or half applied because each runs whole.

export class RequestGate {
  private closed = false;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly maxWaiting: number) {}

  get isClosed(): boolean {
    return this.closed;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  close(): void {
    this.closed = true;
  }

  open(): void {
    this.closed = false;
    // Run queued requests in order; one that closes the gate again stops the flush.
    while (!this.closed && this.waiting.length > 0) this.waiting.shift()!();
  }

  /** Runs op now when open, else once the gate opens. */
  run<T>(op: () => T): Promise<T> {
    if (!this.closed) {
      // Synchronously, so a close() that follows cannot slip in before it.
      try {
        return Promise.resolve(op());
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.waiting.length >= this.maxWaiting) {
      return Promise.reject(
        new GridError('resource-exhausted', `checkpoint gate holds ${this.waiting.length} requests (limit ${this.maxWaiting})`),
      );
    }
    return new Promise<T>((resolve, reject) => {
      this.waiting.push(() => {
        try {
          resolve(op());
        } catch (err) {
          reject(err);
        }
      });
    });
  }
}
