import type { Logger } from '../common/log.js';
import type { WatchEvent } from '../gen/gridckpt/v1/common.js';
import type { ClusterClient } from '../wire/cluster-client.js';
import type { WatchStream } from '../wire/watch-client.js';
import type { TimerPort } from '../runtime/ports.js';
import { sleep } from '../runtime/timers.js';

// The grid follows each registered cluster's Watch stream, so that it hears
// of a job's share ending there (completed, fenced) when it happens instead
// of asking every cluster's status a few times a second. It reports the
// cluster's job events, and — each time a stream is (re)subscribed — that
// the grid must look at everything on that cluster again: whatever happened
// while the stream was down was not heard. A stream that fails is opened
// again (waiting for the cluster to be reachable) until the cluster is
// followed through a new client or the grid stops.

export interface FollowerPort {
  /** A job event from the cluster. */
  jobEvent(clusterId: string, e: WatchEvent): void;
  /** The stream is (re)subscribed: look at every job on the cluster. */
  resubscribed(clusterId: string): void;
}

/** Pause between a failed stream and the next one (doubling up to MAX). */
const REOPEN_MS = 100;
const REOPEN_MAX_MS = 2_000;

export class ClusterFollower {
  private readonly streams = new Map<string, { client: ClusterClient; stream: WatchStream | null }>();
  private stopped = false;

  constructor(private readonly port: FollowerPort, private readonly log: Logger, private readonly timers: TimerPort) {}

  /** Follows the cluster through this client from now on (a previous client's stream ends). */
  follow(clusterId: string, client: ClusterClient): void {
    this.unfollow(clusterId);
    if (this.stopped) return;
    const entry = { client, stream: null as WatchStream | null };
    this.streams.set(clusterId, entry);
    void this.run(clusterId, entry);
  }

  unfollow(clusterId: string): void {
    this.streams.get(clusterId)?.stream?.cancel();
    this.streams.delete(clusterId);
  }

  stop(): void {
    this.stopped = true;
    for (const id of [...this.streams.keys()]) this.unfollow(id);
  }

  private async run(clusterId: string, entry: { client: ClusterClient; stream: WatchStream | null }): Promise<void> {
    const current = () => !this.stopped && this.streams.get(clusterId) === entry;
    let pauseMs = REOPEN_MS;
    while (current()) {
      const stream = entry.client.watch({ waitForReady: true });
      entry.stream = stream;
      try {
        await stream.subscribed;
        pauseMs = REOPEN_MS;
        if (!current()) return;
        this.port.resubscribed(clusterId);
        for await (const e of stream.events()) {
          if (!current()) return;
          if (e.kind === 'job' && e.jobId !== '') this.port.jobEvent(clusterId, e);
        }
      } catch (err) {
        if (current()) this.log.debug({ cluster: clusterId, err: String(err) }, 'cluster watch ended; opening it again');
      } finally {
        stream.cancel();
      }
      if (!current()) return;
      await sleep(this.timers, pauseMs);
      pauseMs = Math.min(pauseMs * 2, REOPEN_MAX_MS);
    }
  }
}
