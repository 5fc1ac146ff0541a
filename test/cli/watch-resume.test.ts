import { describe, expect, it } from 'vitest';
import { FIRST_PAUSE_MS, MAX_PAUSE_MS, WatchResume, nextPauseMs, type EventPosition } from '../../src/cli/watch-resume.js';

// What `gridckpt watch` prints of the events a reopened stream brings
// (src/cli/watch-resume.ts, invariants 1–4), exactly.

const ev = (incarnation: number, seq: number, atUnixMs: number): EventPosition => ({ incarnation: BigInt(incarnation), seq: BigInt(seq), atUnixMs: BigInt(atUnixMs) });

/** The verdicts, shortened: "print", "print: note" or "skip". */
function run(r: WatchResume, events: EventPosition[]): string[] {
  return events.map((e) => {
    const v = r.take(e);
    return v.kind === 'skip' ? 'skip' : v.note === null ? 'print' : `print: ${v.note}`;
  });
}

describe('WatchResume', () => {
  it('skips the replay of what was printed, prints what came after (invariant 1)', () => {
    const r = new WatchResume(false);
    expect(run(r, [ev(3, 1, 100), ev(3, 2, 110), ev(3, 3, 120)])).toEqual(['print', 'print', 'print']);
    // Reopened: the service replays 1..5.
    expect(run(r, [ev(3, 1, 100), ev(3, 2, 110), ev(3, 3, 120), ev(3, 4, 130), ev(3, 5, 140)])).toEqual(['skip', 'skip', 'skip', 'print', 'print']);
  });

  it('prints every event of a restarted service, saying so once (a new incarnation restarts seq)', () => {
    const r = new WatchResume(false);
    run(r, [ev(1, 1, 100), ev(1, 2, 110), ev(1, 3, 120)]);
    // seq 1 and 2 again, but of incarnation 2: new events, not replays.
    expect(run(r, [ev(2, 1, 500), ev(2, 2, 510)])).toEqual(['print: the service restarted: incarnation 1 → 2', 'print']);
    expect(run(r, [ev(2, 1, 500), ev(2, 2, 510), ev(2, 3, 520)])).toEqual(['skip', 'skip', 'print']);
  });

  it('names the events it can no longer get, on an unfiltered stream (invariant 3)', () => {
    const r = new WatchResume(false);
    run(r, [ev(1, 1, 100), ev(1, 2, 110)]);
    expect(run(r, [ev(1, 7, 200)])).toEqual(['print: events #3–#6 of incarnation 1 were not kept by the service: missed']);
    expect(run(r, [ev(1, 9, 210)])).toEqual(['print: events #8 of incarnation 1 were not kept by the service: missed']);
    expect(run(r, [ev(2, 4, 300)])).toEqual(['print: the service restarted: incarnation 1 → 2; events #1–#3 of it were not kept by the service: missed']);
  });

  it('says nothing of gaps on a job-filtered stream, whose numbers skip', () => {
    const r = new WatchResume(true);
    expect(run(r, [ev(1, 2, 100), ev(1, 7, 110), ev(2, 5, 300), ev(2, 5, 300)])).toEqual(['print', 'print', 'print: the service restarted: incarnation 1 → 2', 'skip']);
  });

  it('prints, never skips, a life that starts over at the same or a lower incarnation (invariant 2)', () => {
    const r = new WatchResume(false);
    run(r, [ev(4, 1, 100), ev(4, 2, 110), ev(4, 3, 120)]);
    // A service with a new data directory: incarnation 1, events numbered from 1 again.
    expect(run(r, [ev(1, 1, 900), ev(1, 2, 910)])).toEqual(['print: the service was replaced: incarnation 4 → 1', 'print']);
    // The same incarnation number as the last printed, but newer than it: not a replay.
    const s = new WatchResume(false);
    run(s, [ev(1, 1, 100), ev(1, 2, 110), ev(1, 3, 120)]);
    expect(run(s, [ev(1, 1, 500), ev(1, 2, 510)])).toEqual(['print: the service started over at incarnation 1 (event #1 is newer than #3 printed)', 'print']);
  });
});

describe('nextPauseMs', () => {
  it('doubles from 100 ms and stays at 5 s (invariant 4)', () => {
    const pauses = [FIRST_PAUSE_MS];
    for (let i = 0; i < 8; i++) pauses.push(nextPauseMs(pauses.at(-1)!));
    expect(pauses).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    expect(MAX_PAUSE_MS).toBe(5000);
    expect(() => nextPauseMs(0)).toThrow(/out of/);
  });
});
