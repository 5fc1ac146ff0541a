// A job is completed only when its end state is in a committed epoch: the
// round after its last unit exited must commit. That round is retried a few
// times (a store that was briefly full, a participant that was busy); when it
// still does not commit, the job ends failed, saying that its final state is
// not checkpointed and why — never completed. Pure; both tiers use it.
// Invariants:
//   1. completed only after a committed final round.
//   2. At most MAX_FINAL_ROUND_ATTEMPTS rounds; then a verdict that names
//      every attempt's reason.

import { assert } from '../../common/errors.js';

export const MAX_FINAL_ROUND_ATTEMPTS = 3;
/** Wait before the next attempt: attempt × this (a full store may drain, a busy peer settle). */
export const FINAL_ROUND_BACKOFF_MS = 250;

/** What one attempt came to: committed, or why not (aborted, or not even started). */
export type FinalAttempt = { kind: 'committed'; epoch: bigint } | { kind: 'failed'; reason: string };

export type FinalRoundVerdict =
  | { kind: 'completed'; epoch: bigint }
  | { kind: 'retry'; afterMs: number }
  | { kind: 'not-checkpointed'; reason: string };

/** `attempts`: every attempt so far, oldest first (at least one). */
export function afterFinalAttempt(attempts: readonly FinalAttempt[]): FinalRoundVerdict {
  const last = attempts[attempts.length - 1];
  assert(last !== undefined, 'afterFinalAttempt needs an attempt');
  if (last.kind === 'committed') return { kind: 'completed', epoch: last.epoch };
  if (attempts.length < MAX_FINAL_ROUND_ATTEMPTS) return { kind: 'retry', afterMs: attempts.length * FINAL_ROUND_BACKOFF_MS };
  const reasons = attempts.map((a, i) => `attempt ${i + 1}: ${a.kind === 'failed' ? a.reason : 'committed'}`).join('; ');
  return { kind: 'not-checkpointed', reason: `its units finished but the final round did not commit, so its final state is in no epoch (${reasons})` };
}
