import { describe, expect, it } from 'vitest';
import { IntervalWindow, PHI_CAP, PhiAccrual, phiOf, silenceForPhi } from '../../src/detector/phi-accrual.js';
import { DEFAULT_DETECTOR_CONFIG } from '../../src/detector/config.js';

// Expected values computed by hand (30-digit mpmath) from
//   phi = log10(1 + exp(z)),  z = y (1.5976 + 0.070566 y²),  y = (silence - mean) / sd
// with mean = 100 ms interval + 300 ms acceptable pause and sd = 100 ms (the defaults).

/** Akka's own two-branch form (PhiAccrualFailureDetector.phi), for comparison. */
function akkaPhi(timeDiff: number, mean: number, sd: number): number {
  const y = (timeDiff - mean) / sd;
  const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
  return timeDiff > mean ? -Math.log10(e / (1 + e)) : -Math.log10(1 - 1 / (1 + e));
}

describe('phiOf (invariant 3)', () => {
  it('matches hand-computed values', () => {
    expect(phiOf(400, 400, 100)).toBeCloseTo(0.30102999566398119521, 14); // y = 0: log10(2)
    expect(phiOf(500, 400, 100)).toBeCloseTo(0.79950832083955986853, 14); // y = 1
    expect(phiOf(600, 400, 100)).toBeCloseTo(1.6428278854871122834, 13); // y = 2
    expect(phiOf(150, 100, 25)).toBeCloseTo(1.6428278854871122834, 13); // y = 2 again
    expect(phiOf(1000, 400, 100)).toBeCloseTo(10.782600858295706769, 12); // y = 6
    expect(phiOf(2000, 400, 100)).toBeCloseTo(136.62901621191618317, 10); // y = 16
    expect(phiOf(0, 400, 100)).toBeCloseTo(7.9633116088433492675e-6, 18); // y = -4
  });

  it("agrees with Akka's formula wherever Akka's does not overflow", () => {
    for (let t = 0; t <= 1500; t += 0.5) {
      const ours = phiOf(t, 400, 100);
      const akka = akkaPhi(t, 400, 100);
      expect(Math.abs(ours - akka)).toBeLessThanOrEqual(1e-12 * Math.max(1, akka));
    }
  });

  it('stays finite and capped where the naive form overflows', () => {
    expect(akkaPhi(5000, 400, 100)).toBe(Infinity); // exp(-z) underflows to 0 in Akka's form
    const big = phiOf(5000, 400, 100);
    expect(Number.isFinite(big)).toBe(true);
    expect(big).toBeGreaterThan(100);
    expect(phiOf(1e9, 400, 100)).toBe(PHI_CAP);
    expect(phiOf(1e300, 0, 1e-3)).toBe(PHI_CAP);
    expect(phiOf(0, 1e12, 1)).toBe(0);
  });

  it('is non-decreasing in the silence', () => {
    let prev = -1;
    for (let t = 0; t <= 3000; t += 1) {
      const phi = phiOf(t, 400, 100);
      expect(phi).toBeGreaterThanOrEqual(prev);
      prev = phi;
    }
  });
});

describe('silenceForPhi (invariant 4)', () => {
  it('inverts phi at hand-computed points', () => {
    expect(silenceForPhi(1, 400, 100)).toBeCloseTo(528.22153449666952274, 9);
    expect(silenceForPhi(5, 400, 100)).toBeCloseTo(811.91914909627255203, 9);
    expect(silenceForPhi(8, 400, 100)).toBeCloseTo(922.59866440935634263, 9);
    expect(silenceForPhi(20, 400, 100)).toBeCloseTo(1180.7121604912444506, 9);
    expect(silenceForPhi(100, 400, 100)).toBeCloseTo(1832.3648874204845738, 8);
  });

  it('round-trips through phiOf', () => {
    for (const p of [1, 1.5, 2, 3, 5, 8, 12, 30, 99]) {
      for (const [mean, sd] of [[400, 100], [120, 7], [3000, 1000], [0.5, 0.001]] as const) {
        expect(phiOf(silenceForPhi(p, mean, sd), mean, sd)).toBeCloseTo(p, 9);
      }
    }
  });
});

describe('IntervalWindow (invariant 1)', () => {
  it("starts from Akka's two bootstrap samples", () => {
    const w = new IntervalWindow(10, 100);
    expect(w.samples()).toEqual([75, 125]);
    expect(w.meanMs).toBe(100);
    expect(w.stdDevMs).toBe(25);
  });

  it('is a bounded ring: the oldest interval leaves first', () => {
    const w = new IntervalWindow(4, 100);
    for (const x of [90, 110, 130, 70]) w.push(x);
    expect(w.count).toBe(4);
    expect(w.samples()).toEqual([90, 110, 130, 70]);
    expect(w.meanMs).toBe(100);
    expect(w.stdDevMs).toBeCloseTo(Math.sqrt((100 + 100 + 900 + 900) / 4), 12);
    w.push(200);
    expect(w.samples()).toEqual([110, 130, 70, 200]);
    expect(w.meanMs).toBeCloseTo(127.5, 12);
    w.checkInvariants();
  });

  it('keeps exact statistics over a long run (no drift)', () => {
    const w = new IntervalWindow(50, 100);
    const xs: number[] = [];
    for (let i = 0; i < 100_000; i += 1) {
      const x = 100 + ((i * 7919) % 41) - 20 + (i % 3) * 0.1;
      w.push(x);
      xs.push(x);
    }
    const last = xs.slice(-50);
    const mean = last.reduce((a, b) => a + b, 0) / 50;
    const sd = Math.sqrt(last.reduce((a, b) => a + (b - mean) ** 2, 0) / 50);
    expect(w.meanMs).toBeCloseTo(mean, 9);
    expect(w.stdDevMs).toBeCloseTo(sd, 9);
    w.checkInvariants();
  });
});

describe('PhiAccrual', () => {
  const params = DEFAULT_DETECTOR_CONFIG;

  it('uses the padded mean and the floored standard deviation', () => {
    const d = new PhiAccrual(params, 1000);
    for (let t = 1100; t <= 3000; t += 100) d.heartbeat(t); // 19 intervals of exactly 100 ms
    expect(d.heartbeats).toBe(20);
    expect(d.samples).toBe(21); // 2 bootstrap samples + 19
    expect(d.windowMeanMs).toBe(100);
    expect(d.windowStdDevMs).toBeCloseTo(Math.sqrt((625 * 2) / 21), 9);
    expect(d.effectiveMeanMs).toBe(400);
    expect(d.effectiveStdDevMs).toBe(100);
    expect(d.phiAt(3500)).toBeCloseTo(0.79950832083955986853, 14);
  });

  it('crossingMs is the first instant phi reaches the threshold', () => {
    const d = new PhiAccrual(params, 0);
    d.heartbeat(0);
    for (const p of [5, 8]) {
      const at = d.crossingMs(p);
      expect(d.phiAt(at)).toBeGreaterThanOrEqual(p);
      expect(d.phiAt(at - 1e-6)).toBeLessThan(p);
    }
    expect(d.crossingMs(5)).toBeCloseTo(811.91914909627255203, 9);
    expect(d.crossingMs(8)).toBeCloseTo(922.59866440935634263, 9);
  });

  it('measures the first silence from the start, not from a heartbeat', () => {
    const d = new PhiAccrual(params, 5000);
    expect(d.phiAt(5500)).toBeCloseTo(0.79950832083955986853, 14);
    d.heartbeat(5050); // the first heartbeat adds no interval
    expect(d.samples).toBe(2);
    d.heartbeat(5150);
    expect(d.samples).toBe(3);
  });
});
