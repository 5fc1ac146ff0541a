import { afterFinalAttempt, type FinalAttempt, type FinalRoundVerdict } from './core/final-round.js';
import type { RoundOutcome } from './core/round.js';
import type { TimerPort } from '../runtime/ports.js';
import { sleep } from '../runtime/timers.js';

// The shell of a job's final round (decisions in core/final-round.ts): run
// it, and again after a short wait while the core says so. Null when the
// job stopped being current meanwhile (a recovery or a fence took over).

export type FinalRoundEnd = Extract<FinalRoundVerdict, { kind: 'completed' | 'not-checkpointed' }>;

export async function runFinalRound(timers: TimerPort, round: () => Promise<RoundOutcome>, current: () => boolean): Promise<FinalRoundEnd | null> {
  const attempts: FinalAttempt[] = [];
  for (;;) {
    attempts.push(await round().then(toAttempt, (err: unknown): FinalAttempt => ({ kind: 'failed', reason: `not started: ${err instanceof Error ? err.message : String(err)}` })));
    if (!current()) return null;
    const verdict = afterFinalAttempt(attempts);
    if (verdict.kind !== 'retry') return verdict;
    await sleep(timers, verdict.afterMs);
    if (!current()) return null;
  }
}

function toAttempt(o: RoundOutcome): FinalAttempt {
  return o.kind === 'committed' ? { kind: 'committed', epoch: o.epoch } : { kind: 'failed', reason: `round ${o.epoch} aborted in ${o.phase}: ${o.reason}` };
}
