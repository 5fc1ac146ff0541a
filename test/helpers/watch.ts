import type { WatchEvent } from '../../src/gen/gridckpt/v1/common.js';
import type { WatchStream } from '../../src/wire/watch-client.js';

// Reading a Watch stream in a test: the next event that matches, every event
// seen on the way kept (in order) for the assertions.

export class EventLog {
  readonly seen: WatchEvent[] = [];
  private readonly it: AsyncIterator<WatchEvent>;

  constructor(readonly stream: WatchStream) {
    this.it = stream.events()[Symbol.asyncIterator]();
  }

  /** The next event that matches; fails after deadlineMs naming what it waited for and the last events. */
  async next(match: (e: WatchEvent) => boolean, what: string, deadlineMs = 60_000): Promise<WatchEvent> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_r, reject) => {
      timer = setTimeout(() => reject(new Error(`no event for ${what} within ${deadlineMs} ms; last: ${this.seen.slice(-5).map(describe).join(' | ')}`)), deadlineMs);
    });
    try {
      for (;;) {
        const r = await Promise.race([this.it.next(), late]);
        if (r.done) throw new Error(`the stream ended before ${what}`);
        this.seen.push(r.value);
        if (match(r.value)) return r.value;
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

export function describe(e: WatchEvent): string {
  return `#${e.seq} ${e.kind} ${e.jobId} ${e.subject} ${e.from}→${e.to}: ${e.detail}`;
}
