import type { Rng } from '../runtime/ports.js';

// Retry delays: exponential from baseMs, capped at capMs, with "equal
// jitter" (half the delay fixed, half drawn) so that the agents of a cluster
// that went away together do not all knock again at the same instant when it
// comes back, while each still waits at least half its step.

export interface BackoffConfig {
  baseMs: number;
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffConfig = { baseMs: 200, capMs: 10_000 };

/** The delay before retry number `attempt` (1 for the first retry); rng null: no jitter (the full step). */
export function backoffDelayMs(attempt: number, config: BackoffConfig, rng: Rng | null): number {
  if (!Number.isInteger(attempt) || attempt < 1) throw new Error(`bad retry attempt ${attempt}`);
  if (!(config.baseMs > 0) || config.capMs < config.baseMs) throw new Error(`bad backoff ${config.baseMs}..${config.capMs} ms`);
  // 2^30 already exceeds any cap: the exponent is bounded so the step stays a finite number.
  const step = Math.min(config.capMs, config.baseMs * 2 ** Math.min(attempt - 1, 30));
  return rng === null ? step : step / 2 + rng.next() * (step / 2);
}
