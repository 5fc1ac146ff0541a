import { assert } from '../common/errors.js';

// The phi accrual failure detector (Hayashibara et al., 2004; the variant in
// Akka and Cassandra), as a pure computation over one peer's heartbeats.
//
// Intuition: instead of a yes/no timeout, keep the recent heartbeat
// inter-arrival times, model them as a normal distribution, and turn the
// current silence into a suspicion level
//
//     phi(t) = -log10(P(the next heartbeat comes later than t))
//
// so phi 1 means "a 10% chance we are wrong to suspect", phi 8 "a 1e-8
// chance". A peer that has always been punctual becomes suspect soon after
// its usual interval; an irregular one is given more time. As in Akka the
// mean is padded by an acceptable heartbeat pause (a GC, a slow scheduler)
// and the standard deviation never drops below a configured minimum, so a
// perfectly regular peer is not declared dead a few ms after a beat is late.
// The normal tail uses Akka's logistic approximation of the normal CDF,
//
//     CDF(y) ≈ 1 / (1 + exp(-y (1.5976 + 0.070566 y²)))
//
// With z = y (1.5976 + 0.070566 y²), 1 - CDF = 1 / (1 + exp(z)), so
// phi = log10(1 + exp(z)) = softplus(z) / ln 10, which we evaluate in a form
// that cannot overflow (Akka takes the same value in two branches that need
// exp() of large arguments). z is strictly increasing in y, so phi is
// strictly increasing in the silence and can be inverted exactly: the
// instant at which phi reaches a threshold is the root of a monotone cubic.
//
// Bootstrapping: a fresh window holds two samples (estimate - estimate/4,
// estimate + estimate/4) as Akka's firstHeartbeatEstimate does, so phi is
// defined from the first moment; real intervals push them out.
//
// Invariants:
//   1. The window holds between 1 and maxSamples intervals, each finite and
//      >= 0 (a bounded ring; the oldest interval leaves first).
//   2. meanMs and stdDevMs are finite, stdDevMs >= 0; the effective standard
//      deviation is >= minStdDevMs > 0, so y is always finite.
//   3. phi is finite, in [0, PHI_CAP], and non-decreasing in the silence.
//   4. crossingMs(p) is the earliest instant (to within a few ulps) at which
//      phi reaches p: phiAt(crossingMs(p)) >= p.
//   5. Time at this level never goes backwards: heartbeats arrive at
//      non-decreasing instants.
//   6. excuse(ms) moves the silence clock forward by ms (time the caller was
//      not running, so could not hear a heartbeat); the interval that spans
//      an excused stretch is not sampled: it measures the caller, not the peer.
//
// This file is pure: no I/O, no timers, no clock. Time comes in as arguments.
// Hot-path checks read `if (!cond) assert(false, message)` so the message is
// only built when a check fails.

/** The largest phi reported (a probability of 1e-1000 is "certainly dead"). */
export const PHI_CAP = 1000;

const A = 0.070566;
const B = 1.5976;
const LN10 = Math.LN10;

function softplus(z: number): number {
  return z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
}

/**
 * phi for `silenceMs` of silence when intervals are normal with this mean
 * and standard deviation (the mean already padded by any acceptable pause).
 */
export function phiOf(silenceMs: number, meanMs: number, stdDevMs: number): number {
  if (!(Number.isFinite(silenceMs) && Number.isFinite(meanMs))) assert(false, `bad phi arguments ${silenceMs} ${meanMs}`);
  if (!(Number.isFinite(stdDevMs) && stdDevMs > 0)) assert(false, `bad standard deviation ${stdDevMs}`);
  const y = (silenceMs - meanMs) / stdDevMs;
  const z = y * (B + A * y * y);
  const phi = softplus(z) / LN10;
  // z is -Infinity or +Infinity only for |y| beyond ~1e102: phi is then 0 or capped.
  if (!(phi < PHI_CAP)) return PHI_CAP;
  return phi;
}

/** The standardized silence y at which the logistic tail gives `phi`. */
function yForPhi(phi: number): number {
  // softplus(z) = phi ln10  =>  z = ln(10^phi - 1) = phi ln10 + ln(1 - 10^-phi)
  const z = phi * LN10 + Math.log1p(-Math.pow(10, -phi));
  // Solve A y³ + B y - z = 0 (one real root: the cubic is strictly increasing).
  const p = B / A;
  const q = -z / A;
  const d = Math.sqrt((q * q) / 4 + (p * p * p) / 27);
  let y = Math.cbrt(-q / 2 + d) + Math.cbrt(-q / 2 - d);
  for (let i = 0; i < 3; i += 1) y -= (A * y * y * y + B * y - z) / (3 * A * y * y + B);
  return y;
}

/** Silence (ms) at which phiOf reaches `phi` (exact up to rounding). */
export function silenceForPhi(phi: number, meanMs: number, stdDevMs: number): number {
  if (!(phi > 0 && phi < PHI_CAP)) assert(false, `phi threshold ${phi} out of (0, ${PHI_CAP})`);
  if (!(Number.isFinite(stdDevMs) && stdDevMs > 0)) assert(false, `bad standard deviation ${stdDevMs}`);
  return meanMs + yForPhi(phi) * stdDevMs;
}

/**
 * A bounded ring of inter-arrival times with running sums. Sums are kept
 * relative to the expected interval (shifted data: no cancellation when the
 * spread is small against the mean) and recomputed exactly once per
 * maxSamples pushes so rounding cannot drift.
 */
export class IntervalWindow {
  readonly maxSamples: number;
  private readonly shiftMs: number;
  private readonly ring: Float64Array;
  private head = 0; // next slot to write
  private size = 0;
  private sum = 0; // Σ (x - shift)
  private sumSq = 0; // Σ (x - shift)²
  private pushesSinceExact = 0;

  constructor(maxSamples: number, expectedIntervalMs: number) {
    assert(Number.isSafeInteger(maxSamples) && maxSamples >= 2, `bad maxSamples ${maxSamples}`);
    assert(Number.isFinite(expectedIntervalMs) && expectedIntervalMs > 0, `bad interval ${expectedIntervalMs}`);
    this.maxSamples = maxSamples;
    this.shiftMs = expectedIntervalMs;
    this.ring = new Float64Array(maxSamples);
    const spread = expectedIntervalMs / 4;
    this.push(expectedIntervalMs - spread);
    this.push(expectedIntervalMs + spread);
  }

  get count(): number {
    return this.size;
  }

  push(intervalMs: number): void {
    if (!(Number.isFinite(intervalMs) && intervalMs >= 0)) assert(false, `bad interval ${intervalMs}`);
    if (this.size === this.maxSamples) {
      const old = this.ring[this.head]! - this.shiftMs;
      this.sum -= old;
      this.sumSq -= old * old;
    } else {
      this.size += 1;
    }
    this.ring[this.head] = intervalMs;
    this.head = (this.head + 1) % this.maxSamples;
    const d = intervalMs - this.shiftMs;
    this.sum += d;
    this.sumSq += d * d;
    this.pushesSinceExact += 1;
    if (this.pushesSinceExact >= this.maxSamples) this.recomputeSums();
  }

  get meanMs(): number {
    return this.shiftMs + this.sum / this.size;
  }

  /** Population standard deviation of the window (Akka's definition). */
  get stdDevMs(): number {
    const m = this.sum / this.size;
    return Math.sqrt(Math.max(0, this.sumSq / this.size - m * m));
  }

  /** The intervals, oldest first (for tests and invariant checks). */
  samples(): number[] {
    const out: number[] = [];
    const start = (this.head - this.size + this.maxSamples) % this.maxSamples;
    for (let i = 0; i < this.size; i += 1) out.push(this.ring[(start + i) % this.maxSamples]!);
    return out;
  }

  private recomputeSums(): void {
    let sum = 0;
    let sumSq = 0;
    for (const x of this.samples()) {
      const d = x - this.shiftMs;
      sum += d;
      sumSq += d * d;
    }
    this.sum = sum;
    this.sumSq = sumSq;
    this.pushesSinceExact = 0;
  }

  checkInvariants(): void {
    assert(this.size >= 1 && this.size <= this.maxSamples, `window size ${this.size} of ${this.maxSamples}`);
    const xs = this.samples();
    let sum = 0;
    for (const x of xs) {
      assert(Number.isFinite(x) && x >= 0, `bad interval ${x} in window`);
      sum += x;
    }
    const mean = sum / xs.length;
    assert(Number.isFinite(this.meanMs) && Number.isFinite(this.stdDevMs), 'window statistics not finite');
    assert(Math.abs(mean - this.meanMs) <= 1e-6 * Math.max(1, Math.abs(mean)), `running mean ${this.meanMs} != ${mean}`);
  }
}

export interface PhiAccrualParams {
  /** Expected heartbeat interval: seeds the window (firstHeartbeatEstimate). */
  readonly heartbeatIntervalMs: number;
  readonly maxSamples: number;
  readonly minStdDevMs: number;
  readonly acceptablePauseMs: number;
}

/** One peer's detector: its interval window and the last arrival. */
export class PhiAccrual {
  private readonly params: PhiAccrualParams;
  private readonly window: IntervalWindow;
  private lastArrival: number;
  private arrivals = 0;
  /** The next interval spans excused time (invariant 6). */
  private skipNextInterval = false;

  /** Starts the silence clock at `startMs` (a watch without a heartbeat yet). */
  constructor(params: PhiAccrualParams, startMs: number) {
    assert(Number.isFinite(startMs), `bad start time ${startMs}`);
    assert(params.minStdDevMs > 0 && params.acceptablePauseMs >= 0, 'bad phi accrual parameters');
    this.params = params;
    this.window = new IntervalWindow(params.maxSamples, params.heartbeatIntervalMs);
    this.lastArrival = startMs;
  }

  get lastArrivalMs(): number {
    return this.lastArrival;
  }

  /** Heartbeats taken since the start (the first one adds no interval). */
  get heartbeats(): number {
    return this.arrivals;
  }

  get samples(): number {
    return this.window.count;
  }

  heartbeat(nowMs: number): void {
    if (!(nowMs >= this.lastArrival)) assert(false, `heartbeat at ${nowMs} before the last one at ${this.lastArrival}`);
    if (this.arrivals > 0 && !this.skipNextInterval) this.window.push(nowMs - this.lastArrival);
    this.skipNextInterval = false;
    this.arrivals += 1;
    this.lastArrival = nowMs;
  }

  /** `pausedMs` during which the caller could not hear this peer: it does not count as silence. */
  excuse(pausedMs: number): void {
    if (!(Number.isFinite(pausedMs) && pausedMs >= 0)) assert(false, `bad excused time ${pausedMs}`);
    this.lastArrival += pausedMs;
    this.skipNextInterval = true;
  }

  /** The mean used by phi: the window's mean plus the acceptable pause. */
  get effectiveMeanMs(): number {
    return this.window.meanMs + this.params.acceptablePauseMs;
  }

  /** The standard deviation used by phi: never below minStdDevMs. */
  get effectiveStdDevMs(): number {
    return Math.max(this.window.stdDevMs, this.params.minStdDevMs);
  }

  get windowMeanMs(): number {
    return this.window.meanMs;
  }

  get windowStdDevMs(): number {
    return this.window.stdDevMs;
  }

  phiAt(nowMs: number): number {
    return phiOf(Math.max(0, nowMs - this.lastArrival), this.effectiveMeanMs, this.effectiveStdDevMs);
  }

  /**
   * The earliest instant at which phi reaches `phi` if no heartbeat comes:
   * the inverted formula, then nudged up by ulps until phiAt agrees, so a
   * caller comparing `now >= crossingMs(p)` and one comparing
   * `phiAt(now) >= p` decide alike at that instant.
   */
  crossingMs(phi: number): number {
    const silence = silenceForPhi(phi, this.effectiveMeanMs, this.effectiveStdDevMs);
    let at = this.lastArrival + Math.max(0, silence);
    let step = Math.max(Math.abs(at), 1) * Number.EPSILON;
    for (let i = 0; this.phiAt(at) < phi; i += 1) {
      assert(i < 64, `cannot reach phi ${phi} near ${at}`);
      at += step;
      step *= 2;
    }
    return at;
  }

  checkInvariants(): void {
    this.window.checkInvariants();
    assert(Number.isFinite(this.lastArrival), 'last arrival not finite');
    assert(this.effectiveStdDevMs >= this.params.minStdDevMs, 'standard deviation below its minimum');
  }
}
