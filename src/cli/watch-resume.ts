// Following a Watch stream across reconnects, as `gridckpt watch` does: what
// to print of the events a reopened stream brings, and how long to pause
// between attempts. No I/O here: the shell (watch-cmd.ts) opens the streams.
//
// Intuition: a reopened stream asks for the events the service kept (its
// replay), so that what happened while the stream was down is not lost; the
// ones already printed come again and are told apart by (incarnation, seq).
// An event's seq starts at 1 in each incarnation of the service and grows by
// one per event it emits (a filtered stream skips numbers), so seq compares
// only within one incarnation; a restarted service (a higher incarnation)
// has printed nothing yet, and a replay of it is all new.
// Invariants:
//   1. Within one incarnation, an event is printed at most once and in seq
//      order: one at or below the last printed seq is a replay of one
//      printed (skipped).
//   2. Nothing is skipped that was not printed: an event of another
//      incarnation is printed, and so is one whose number is not above the
//      last printed but that happened later than it (the same incarnation
//      number from a service that started over, say with a new data
//      directory: it is a different life, not a replay).
//   3. A gap is said, never hidden: on an unfiltered stream, where numbers
//      are consecutive, events the service no longer kept are named.
//   4. Pauses are bounded: from FIRST_PAUSE_MS doubling to MAX_PAUSE_MS.

/** The first pause after a lost stream, and between failed attempts the most. */
export const FIRST_PAUSE_MS = 100;
export const MAX_PAUSE_MS = 5_000;

/** Replay asked of a reopened stream: as many as the service kept (it bounds this to its ring). */
export const REPLAY_ON_REOPEN = 1_000_000;

export function nextPauseMs(pauseMs: number): number {
  if (!(pauseMs >= FIRST_PAUSE_MS && pauseMs <= MAX_PAUSE_MS)) throw new Error(`pause ${pauseMs} ms out of [${FIRST_PAUSE_MS}, ${MAX_PAUSE_MS}]`);
  return Math.min(MAX_PAUSE_MS, pauseMs * 2);
}

/** What of an event decides whether it was printed. */
export interface EventPosition {
  incarnation: bigint;
  seq: bigint;
  atUnixMs: bigint;
}

export type ResumeVerdict =
  | { kind: 'print'; note: string | null }
  | { kind: 'skip' };

export class WatchResume {
  private last: EventPosition | null = null;

  /** filtered: the stream is of one job, so its numbers skip and a gap cannot be seen. */
  constructor(private readonly filtered: boolean) {}

  /** Each event as it arrives, from every stream in turn. */
  take(e: EventPosition): ResumeVerdict {
    const last = this.last;
    const verdict = this.judge(last, e);
    if (verdict.kind === 'print') this.last = { incarnation: e.incarnation, seq: e.seq, atUnixMs: e.atUnixMs };
    return verdict;
  }

  private judge(last: EventPosition | null, e: EventPosition): ResumeVerdict {
    if (last === null) return { kind: 'print', note: null };
    if (e.incarnation === last.incarnation) {
      if (e.seq <= last.seq) {
        // Invariant 2: later than the last printed yet not numbered above it: another life.
        if (e.atUnixMs > last.atUnixMs) return { kind: 'print', note: `the service started over at incarnation ${e.incarnation} (event #${e.seq} is newer than #${last.seq} printed)` };
        return { kind: 'skip' };
      }
      return { kind: 'print', note: this.gap(last.seq + 1n, e.seq, `incarnation ${e.incarnation}`) };
    }
    const change = e.incarnation > last.incarnation ? 'restarted' : 'was replaced';
    const restarted = `the service ${change}: incarnation ${last.incarnation} → ${e.incarnation}`;
    const gap = this.gap(1n, e.seq, 'it');
    return { kind: 'print', note: gap === null ? restarted : `${restarted}; ${gap}` };
  }

  /** Events from..(upTo - 1) were not seen (invariant 3), when the stream says so. */
  private gap(from: bigint, upTo: bigint, of: string): string | null {
    if (this.filtered || upTo <= from) return null;
    const range = upTo - 1n === from ? `#${from}` : `#${from}–#${upTo - 1n}`;
    return `events ${range} of ${of} were not kept by the service: missed`;
  }
}
