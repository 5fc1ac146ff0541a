// A job is completed only when its end state is in a committed epoch: the
// round after its last unit exited must commit. That round is retried a few
// times (a store that was briefly full, a participant that was busy); when it
// still does not commit, the job ends failed, saying that its final state is
// not checkpointed and why — never completed. The cores of both tiers
// decide it (src/cluster/core/supervisor-rounds.ts, src/grid/core/); these
// are the limits they share.

export const MAX_FINAL_ROUND_ATTEMPTS = 3;
/** Wait before the next attempt: attempt × this (a full store may drain, a busy peer settle). */
export const FINAL_ROUND_BACKOFF_MS = 250;
