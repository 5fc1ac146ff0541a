// Completed only after a committed final round; a bounded number of tries.

import { describe, expect, it } from 'vitest';
import { afterFinalAttempt, FINAL_ROUND_BACKOFF_MS, MAX_FINAL_ROUND_ATTEMPTS } from '../../src/protocol/core/final-round.js';

describe('afterFinalAttempt', () => {
  it('completes on a committed round, retries a failed one with a growing wait', () => {
    expect(afterFinalAttempt([{ kind: 'committed', epoch: 9n }])).toEqual({ kind: 'completed', epoch: 9n });
    expect(afterFinalAttempt([{ kind: 'failed', reason: 'ENOSPC' }])).toEqual({ kind: 'retry', afterMs: FINAL_ROUND_BACKOFF_MS });
    expect(afterFinalAttempt([{ kind: 'failed', reason: 'ENOSPC' }, { kind: 'committed', epoch: 10n }])).toEqual({ kind: 'completed', epoch: 10n });
  });

  it('after the last attempt: not checkpointed, naming every attempt', () => {
    const attempts = Array.from({ length: MAX_FINAL_ROUND_ATTEMPTS }, (_, i) => ({ kind: 'failed' as const, reason: `round ${i + 7} aborted in manifest: ENOSPC` }));
    expect(afterFinalAttempt(attempts)).toEqual({
      kind: 'not-checkpointed',
      reason: 'its units finished but the final round did not commit, so its final state is in no epoch '
        + '(attempt 1: round 7 aborted in manifest: ENOSPC; attempt 2: round 8 aborted in manifest: ENOSPC; attempt 3: round 9 aborted in manifest: ENOSPC)',
    });
    expect(() => afterFinalAttempt([])).toThrow(/invariant broken/);
  });
});
