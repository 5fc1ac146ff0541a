import { Metadata, status, type ServerWritableStream } from '@grpc/grpc-js';
import type { WatchEvent } from '../gen/gridckpt/v1/common.js';
import { toServiceError } from '../common/grpc-status.js';
import { checkName } from '../common/names.js';
import type { EventHub, HubEvent, Subscription } from './event-hub.js';

// The server side of every service's Watch RPC: one hub subscription per
// call, written out as fast as the reader takes it. The stream's own buffer
// is kept small (write() until it says stop, then wait for 'drain'), so a
// slow reader's backlog piles up in the hub's bounded queue, which cuts it
// off with RESOURCE_EXHAUSTED. A cancel, a deadline or a disconnect ends the
// subscription.

/** The request and response every service's Watch has (they differ only in name). */
export interface WatchRequestPb {
  jobId: string;
  replayRecent: number;
}

export interface WatchResponsePb {
  event: WatchEvent | undefined;
}

export function eventToPb(e: HubEvent): WatchEvent {
  return { ...e, atUnixMs: BigInt(e.atUnixMs) };
}

export function serveWatch(hub: EventHub): (call: ServerWritableStream<WatchRequestPb, WatchResponsePb>) => void {
  return (call) => {
    let sub: Subscription;
    let done = false;
    let scheduled = false;
    let draining = false;
    const pump = () => {
      scheduled = false;
      while (!done && !draining) {
        const e = sub.take();
        if (!e) return;
        if (!call.write({ event: eventToPb(e) })) {
          draining = true;
          call.once('drain', () => {
            draining = false;
            pump();
          });
        }
      }
    };
    const finish = () => {
      done = true;
      sub?.close();
    };
    try {
      const jobId = call.request.jobId === '' ? '' : checkName('job id', call.request.jobId);
      sub = hub.subscribe({ jobId, replayRecent: call.request.replayRecent }, {
        // Never write from inside the service's emit: batch what one turn emitted.
        wake: () => {
          if (scheduled || done) return;
          scheduled = true;
          queueMicrotask(pump);
        },
        end: (why) => {
          done = true;
          if (why.kind === 'closed') {
            // The last events still go out (at most a queue's worth), then the stream ends normally.
            for (let e = sub.take(); e; e = sub.take()) call.write({ event: eventToPb(e) });
            call.end();
          } else call.emit('error', { code: status.RESOURCE_EXHAUSTED, details: `watcher too far behind: ${why.queued} events waiting (limit ${hub.limits.subscriberQueue}); watch again` });
        },
      });
    } catch (err) {
      call.emit('error', toServiceError(err));
      return;
    }
    call.on('cancelled', finish);
    call.on('close', finish);
    // Headers now: the reader knows it is subscribed, so nothing after this instant is missed.
    call.sendMetadata(new Metadata());
  };
}
