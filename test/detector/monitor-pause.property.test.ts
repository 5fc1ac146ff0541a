import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type DetectorConfig, scaleDetectorConfig } from '../../src/detector/config.js';
import { type IgnoredReason, Monitor, type MonitorInput, type OwnPause, type Verdict, type VerdictChange } from '../../src/detector/monitor.js';
import { phiOf, silenceForPhi } from '../../src/detector/phi-accrual.js';
import { SelfStepper } from './self-stepper.js';

// The own-pause check (monitor.ts M9-M11) against a naive model, on random
// schedules of heartbeats, running stretches and stops of the monitor's own
// process, stepped the way a serial driver steps a core that holds it (a tick at each
// nextStepMs; a stop steps nothing, then the overdue tick fires late). The
// model keeps plain arrays, evaluates phi at each step's time, and applies
// the rule as stated: a gap above selfPauseMs while a peer is live moves
// every live peer's silence clock by the gap less selfTickMs and drops the
// interval across it. Then a tail of short runs between long stops, without
// heartbeats: every peer must end failed (M10: pauses delay a verdict, never
// forever).

const PEERS = ['a', 'b', 'c'] as const;

const TIGHT: DetectorConfig = {
  heartbeatIntervalMs: 100, suspectPhi: 1.5, failPhi: 3, minStdDevMs: 10, acceptablePauseMs: 0,
  maxSamples: 3, maxPeers: 3, selfTickMs: 50, selfPauseMs: 120,
};

interface ModelPeer { verdict: Verdict; intervals: number[]; lastArrivalMs: number; arrivals: number; skipNext: boolean }

class PauseModel {
  readonly peers = new Map<string, ModelPeer>();
  private prevMs = -Infinity;
  constructor(readonly config: DetectorConfig) {}

  stats(p: ModelPeer): { mean: number; sd: number } {
    const xs = p.intervals.slice(-this.config.maxSamples);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
    return { mean: mean + this.config.acceptablePauseMs, sd: Math.max(sd, this.config.minStdDevMs) };
  }

  /** Running-time silence after which the peer is failed. */
  failSilenceMs(p: ModelPeer): number {
    const { mean, sd } = this.stats(p);
    return silenceForPhi(this.config.failPhi, mean, sd);
  }

  /** Peers whose phi at the last step was a rounding error away from a threshold (see checkRun). */
  readonly borderline = new Set<string>();

  step(input: MonitorInput, nowMs: number): { ignored: IgnoredReason | null; paused: boolean } {
    this.borderline.clear();
    const live = [...this.peers.values()].filter((p) => p.verdict !== 'failed');
    const gap = nowMs - this.prevMs;
    const paused = live.length > 0 && gap > this.config.selfPauseMs!;
    this.prevMs = nowMs;
    for (const [name, p] of this.peers) {
      if (p.verdict === 'failed') continue;
      if (paused) {
        p.lastArrivalMs += gap - this.config.selfTickMs!;
        p.skipNext = true;
      }
      const { mean, sd } = this.stats(p);
      const phi = phiOf(nowMs - p.lastArrivalMs, mean, sd);
      if (Math.abs(phi - this.config.suspectPhi) < 1e-9 || Math.abs(phi - this.config.failPhi) < 1e-9) this.borderline.add(name);
      if (phi >= this.config.failPhi) p.verdict = 'failed';
      else if (phi >= this.config.suspectPhi) p.verdict = 'suspected';
    }
    if (input.kind === 'tick') return { ignored: null, paused };
    if (input.kind === 'watch') {
      const e = this.config.heartbeatIntervalMs;
      this.peers.set(input.peer, { verdict: 'alive', intervals: [e - e / 4, e + e / 4], lastArrivalMs: nowMs, arrivals: 0, skipNext: false });
      return { ignored: null, paused };
    }
    const p = this.peers.get((input as { peer: string }).peer)!;
    if (p.verdict === 'failed') return { ignored: 'failed-incarnation', paused };
    if (p.arrivals > 0 && !p.skipNext) p.intervals.push(nowMs - p.lastArrivalMs);
    p.skipNext = false;
    p.arrivals += 1;
    p.lastArrivalMs = nowMs;
    p.verdict = 'alive';
    return { ignored: null, paused };
  }
}

type Event =
  | { kind: 'beat'; dtMs: number; peer: number }
  | { kind: 'run'; dtMs: number }
  | { kind: 'stop'; ms: number };

const eventArb: fc.Arbitrary<Event> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('beat' as const), dtMs: fc.integer({ min: 0, max: 160 }), peer: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('run' as const), dtMs: fc.integer({ min: 0, max: 1500 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('stop' as const), ms: fc.oneof(fc.integer({ min: 0, max: 500 }), fc.integer({ min: 500, max: 5000 })) }) },
);

function checkRun(config: DetectorConfig, events: Event[]): void {
  const model = new PauseModel(config);
  const pauses: OwnPause[] = [];
  const crossings: VerdictChange[] = [];
  const s = new SelfStepper(new Monitor(config), (input, nowMs, out) => {
    const want = model.step(input, nowMs);
    expect(out.ignored).toBe(want.ignored);
    expect(out.ownPause !== undefined).toBe(want.paused); // M9: exactly the gaps above selfPauseMs, with a live peer
    if (out.ownPause) pauses.push(out.ownPause);
    for (const c of out.changes) {
      if (c.to === 'alive') continue;
      crossings.push(c); // same incarnation throughout: every other change is a crossing
      const threshold = c.to === 'suspected' ? config.suspectPhi : config.failPhi;
      expect(c.phi).toBeGreaterThanOrEqual(threshold);
      expect(c.phi).toBeLessThan(threshold + 1e-6);
    }
    const got = s.monitor.status(nowMs).map((p) => [p.peer, p.verdict, p.samples]);
    // The stepper ticks exactly at crossing instants, where the model's phi (plain sums) and the core's
    // (running sums) may round to either side of the threshold: there the core's verdict is taken.
    for (const st of s.monitor.status(nowMs)) if (model.borderline.has(st.peer)) model.peers.get(st.peer)!.verdict = st.verdict;
    const expected = [...model.peers].sort(([x], [y]) => (x < y ? -1 : 1)).map(([peer, p]) => [peer, p.verdict, Math.min(p.intervals.length, config.maxSamples)]);
    expect(got).toEqual(expected);
  });
  for (const peer of PEERS) s.feed({ kind: 'watch', peer, incarnation: 1n }, 0);
  for (const e of events) {
    if (e.kind === 'stop') s.pause(e.ms);
    else if (e.kind === 'run') s.runTo(s.nowMs + e.dtMs);
    else s.feed({ kind: 'heartbeat', peer: PEERS[e.peer]!, incarnation: 1n }, s.nowMs + e.dtMs);
  }
  // The tail: no heartbeats; 300 ms runs (at least 300 - selfTickMs counted) between 2 s stops.
  const live = [...model.peers.values()].filter((p) => p.verdict !== 'failed');
  const neededMs = Math.max(0, ...live.map((p) => model.failSilenceMs(p)));
  const heardPerCycleMs = 300 - config.selfTickMs!;
  for (let cycle = 0; cycle <= Math.ceil(neededMs / heardPerCycleMs) + 1; cycle += 1) {
    s.runTo(s.nowMs + 300);
    s.pause(2000);
  }
  s.runTo(s.nowMs + 300);
  expect(s.monitor.status(s.nowMs).map((p) => p.verdict)).toEqual(['failed', 'failed', 'failed']);
  // M9: no crossing ever falls inside a pause but in its last tick.
  for (const c of crossings) {
    for (const p of pauses) {
      const inside = c.atMs > p.fromMs + 1e-6 && c.atMs < p.toMs - config.selfTickMs! - 1e-6;
      expect(inside, `${c.peer} ${c.to} at ${c.atMs} inside ${p.fromMs}-${p.toMs}`).toBe(false);
    }
  }
}

describe('Monitor own pauses against a naive model (fast-check)', () => {
  for (const [name, config] of [
    ['defaults at 100 ms, as the processes run them', scaleDetectorConfig(100)],
    ['tight thresholds, 3-sample window, 50/120 ms', TIGHT],
  ] as const) {
    it(`random beats, runs and stops keep M1-M11 and match the model (${name})`, () => {
      fc.assert(fc.property(fc.array(eventArb, { maxLength: 120 }), (events) => checkRun(config, events)), { numRuns: 200 });
    });
  }
});
