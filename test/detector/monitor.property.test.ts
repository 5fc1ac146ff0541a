import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_DETECTOR_CONFIG, type DetectorConfig } from '../../src/detector/config.js';
import {
  type IgnoredReason,
  Monitor,
  type MonitorInput,
  type Verdict,
  type VerdictChange,
} from '../../src/detector/monitor.js';
import { PHI_CAP, phiOf } from '../../src/detector/phi-accrual.js';

// Random heartbeat schedules against a naive model. The model keeps every
// interval in a plain array, recomputes mean and sd from scratch, and decides
// verdicts by evaluating phi at each step's time (no deadlines, no heap):
// phi rises monotonically between heartbeats, so "the highest threshold phi
// has reached by now" is what the monitor must have applied.

const PEERS = ['a', 'b', 'c'] as const;

const TIGHT: DetectorConfig = {
  heartbeatIntervalMs: 100,
  suspectPhi: 1.5,
  failPhi: 3,
  minStdDevMs: 10,
  acceptablePauseMs: 0,
  maxSamples: 3,
  maxPeers: 3,
};

interface ModelPeer {
  incarnation: bigint;
  verdict: Verdict;
  intervals: number[];
  lastArrivalMs: number;
  arrivals: number;
  lastSeq: number | null;
}

class NaiveModel {
  readonly peers = new Map<string, ModelPeer>();
  constructor(readonly config: DetectorConfig) {}

  private fresh(incarnation: bigint, nowMs: number): ModelPeer {
    const e = this.config.heartbeatIntervalMs;
    return { incarnation, verdict: 'alive', intervals: [e - e / 4, e + e / 4], lastArrivalMs: nowMs, arrivals: 0, lastSeq: null };
  }

  phi(p: ModelPeer, nowMs: number): number {
    const xs = p.intervals.slice(-this.config.maxSamples);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
    return phiOf(nowMs - p.lastArrivalMs, mean + this.config.acceptablePauseMs, Math.max(sd, this.config.minStdDevMs));
  }

  step(input: MonitorInput, nowMs: number): IgnoredReason | null {
    for (const p of this.peers.values()) {
      if (p.verdict === 'failed') continue;
      const phi = this.phi(p, nowMs);
      if (phi >= this.config.failPhi) p.verdict = 'failed';
      else if (phi >= this.config.suspectPhi) p.verdict = 'suspected';
    }
    if (input.kind === 'tick') return null;
    const p = this.peers.get(input.peer);
    if (input.kind === 'unwatch') return this.peers.delete(input.peer) ? null : 'unknown-peer';
    if (input.kind === 'watch') {
      if (p === undefined || input.incarnation > p.incarnation) this.peers.set(input.peer, this.fresh(input.incarnation, nowMs));
      return p !== undefined && input.incarnation < p.incarnation ? 'stale-incarnation' : null;
    }
    if (p === undefined) return 'unknown-peer';
    if (input.incarnation < p.incarnation) return 'stale-incarnation';
    let q = p;
    if (input.incarnation > p.incarnation) {
      q = this.fresh(input.incarnation, nowMs);
      this.peers.set(input.peer, q);
    } else if (p.verdict === 'failed') return 'failed-incarnation';
    else if (input.sentSeq !== undefined && p.lastSeq !== null && input.sentSeq <= p.lastSeq) return 'stale-seq';
    if (q.arrivals > 0) q.intervals.push(nowMs - q.lastArrivalMs);
    q.arrivals += 1;
    q.lastArrivalMs = nowMs;
    if (input.sentSeq !== undefined) q.lastSeq = input.sentSeq;
    q.verdict = 'alive';
    return null;
  }
}

type Event =
  | { dtMs: number; kind: 'heartbeat'; peer: number; incDelta: number; seq: number | null }
  | { dtMs: number; kind: 'tick' }
  | { dtMs: number; kind: 'watch'; peer: number; incDelta: number }
  | { dtMs: number; kind: 'unwatch'; peer: number };

const dtArb = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 0, max: 160 }) },
  { weight: 1, arbitrary: fc.integer({ min: 700, max: 1000 }) }, // around the default thresholds
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 3000 }) },
);
const peerArb = fc.integer({ min: 0, max: PEERS.length - 1 });
const incDeltaArb = fc.constantFrom(0, 0, 0, 0, 0, 0, 1, -1);
const eventArb: fc.Arbitrary<Event> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      dtMs: dtArb,
      kind: fc.constant('heartbeat' as const),
      peer: peerArb,
      incDelta: incDeltaArb,
      seq: fc.option(fc.integer({ min: 0, max: 40 })),
    }),
  },
  { weight: 3, arbitrary: fc.record({ dtMs: dtArb, kind: fc.constant('tick' as const) }) },
  { weight: 2, arbitrary: fc.record({ dtMs: dtArb, kind: fc.constant('watch' as const), peer: peerArb, incDelta: incDeltaArb }) },
  { weight: 1, arbitrary: fc.record({ dtMs: dtArb, kind: fc.constant('unwatch' as const), peer: peerArb }) },
);

/** Turns relative events into timed monitor inputs (incarnations relative to the model's). */
function toInputs(events: Event[], model: NaiveModel): Array<{ input: MonitorInput; nowMs: number }> {
  let nowMs = 0;
  const inc = (peer: string, delta: number): bigint => {
    const current = model.peers.get(peer)?.incarnation ?? 1n;
    const next = current + BigInt(delta);
    return next < 0n ? 0n : next;
  };
  const out: Array<{ input: MonitorInput; nowMs: number }> = [];
  for (const e of events) {
    nowMs += e.dtMs;
    let input: MonitorInput;
    if (e.kind === 'tick') input = { kind: 'tick' };
    else if (e.kind === 'unwatch') input = { kind: 'unwatch', peer: PEERS[e.peer]! };
    else if (e.kind === 'watch') input = { kind: 'watch', peer: PEERS[e.peer]!, incarnation: inc(PEERS[e.peer]!, e.incDelta) };
    else {
      const peer = PEERS[e.peer]!;
      input = { kind: 'heartbeat', peer, incarnation: inc(peer, e.incDelta) };
      if (e.seq !== null) input = { ...input, sentSeq: e.seq };
    }
    model.step(input, nowMs); // the model runs ahead here only to pick incarnations
    out.push({ input, nowMs });
  }
  return out;
}

const LEGAL_SAME_INCARNATION = new Set(['alive→suspected', 'suspected→failed', 'suspected→alive']);

function checkRun(config: DetectorConfig, events: Event[]): void {
  const inputs = toInputs(events, new NaiveModel(config));
  const model = new NaiveModel(config);
  const monitor = new Monitor(config);
  const lastTo = new Map<string, Verdict>();
  const all: VerdictChange[] = [];
  let prevNowMs = -Infinity;
  for (const { input, nowMs } of inputs) {
    const out = monitor.step(input, nowMs);
    monitor.checkInvariants();
    expect(out.ignored).toBe(model.step(input, nowMs));
    for (const c of out.changes) {
      checkChange(config, c, input, nowMs, prevNowMs, lastTo);
      all.push(c);
    }
    if (input.kind === 'unwatch' && out.ignored === null) lastTo.delete(input.peer);
    // Same verdicts and incarnations as the model (M1, M2).
    const got = monitor.status(nowMs).map((s) => [s.peer, s.incarnation, s.verdict, s.samples]);
    const want = [...model.peers.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([peer, p]) => [peer, p.incarnation, p.verdict, Math.min(p.intervals.length, config.maxSamples)]);
    expect(got).toEqual(want);
    for (const s of monitor.status(nowMs)) expect(s.phi >= 0 && s.phi <= PHI_CAP).toBe(true); // M6
    prevNowMs = nowMs;
  }
  // Tick independence: without the ticks (and one tick at the end) the same changes come out.
  const untimed = new Monitor(config);
  const again: VerdictChange[] = [];
  for (const { input, nowMs } of inputs) if (input.kind !== 'tick') again.push(...untimed.step(input, nowMs).changes);
  again.push(...untimed.step({ kind: 'tick' }, inputs.at(-1)?.nowMs ?? 0).changes);
  expect(again).toEqual(all);
}

/** M1, M3, M6: each change is legal, chained, finite, and has a cause in this step. */
function checkChange(
  config: DetectorConfig,
  c: VerdictChange,
  input: MonitorInput,
  nowMs: number,
  prevNowMs: number,
  lastTo: Map<string, Verdict>,
): void {
  expect(Number.isFinite(c.phi) && c.phi >= 0).toBe(true);
  expect(c.silenceMs).toBeGreaterThanOrEqual(0);
  expect(c.from).toBe(lastTo.get(c.peer) ?? 'alive');
  lastTo.set(c.peer, c.to);
  const byInput = input.kind !== 'tick' && input.kind !== 'unwatch' && input.peer === c.peer && c.atMs === nowMs;
  const transition = `${c.from}→${c.to}`;
  if (c.to === 'alive') {
    expect(byInput).toBe(true); // only a heartbeat or a newer incarnation revives
    if (c.from === 'failed') expect('incarnation' in input && input.incarnation === c.incarnation).toBe(true);
    else expect(input.kind).toBe('heartbeat');
    return;
  }
  const newerIncarnation = byInput && 'incarnation' in input && input.incarnation > c.incarnation;
  if (newerIncarnation && c.to === 'failed') return; // a restart ends the old incarnation
  expect(LEGAL_SAME_INCARNATION.has(transition)).toBe(true);
  // A crossing: at its own instant, after the previous step, at its threshold.
  expect(c.atMs).toBeGreaterThan(prevNowMs);
  expect(c.atMs).toBeLessThanOrEqual(nowMs);
  const threshold = c.to === 'suspected' ? config.suspectPhi : config.failPhi;
  expect(c.phi).toBeGreaterThanOrEqual(threshold);
  expect(c.phi).toBeLessThan(threshold + 1e-6);
}

describe('Monitor against a naive model (fast-check)', () => {
  for (const [name, config] of [
    ['defaults', DEFAULT_DETECTOR_CONFIG],
    ['tight thresholds, 3-sample window', TIGHT],
  ] as const) {
    it(`random heartbeat schedules keep M1-M8 and match the model (${name})`, () => {
      fc.assert(
        fc.property(fc.array(eventArb, { maxLength: 150 }), (events) => {
          checkRun(config, [{ dtMs: 0, kind: 'watch', peer: 0, incDelta: 0 }, ...events]);
        }),
        { numRuns: 300 },
      );
    });
  }
});
