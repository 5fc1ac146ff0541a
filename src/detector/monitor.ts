import { GridError, assert, invalidArgument } from '../common/errors.js';
import { checkName } from '../common/names.js';
import { type DetectorConfig, validateDetectorConfig } from './config.js';
import { DeadlineHeap, type HeapItem } from './deadline-heap.js';
import { PhiAccrual } from './phi-accrual.js';

// The multi-peer failure monitor: a pure state machine over the heartbeats
// of many peers (node agents for a cluster coordinator, cluster coordinators
// for the grid), in the style of TigerBeetle's detector: time comes in as an
// argument, verdicts come out as values, and nothing here does I/O.
//
// Intuition: each watched peer has a phi accrual detector (phi-accrual.ts).
// While no heartbeat arrives, phi rises; when it reaches suspectPhi the peer
// is suspected, when it reaches failPhi it is failed. The rule for failure is
// "phi >= failPhi" rather than "suspected for longer than a confirm time":
// the gap between suspicion and failure then widens with the peer's learned
// spread (patience for a peer known to be irregular, speed for a punctual
// one), failure stays a function of the heartbeat history alone, and both
// instants are found by inverting one formula. phi only changes on a
// heartbeat or with the passage of time, and rises monotonically in between,
// so every threshold crossing has an exact instant, computed when the
// heartbeat arrives and kept in a heap: nextDeadlineMs() is its minimum, and
// a shell arms exactly one timer for it (for nextStepMs(), see below).
//
// A step first advances time to nowMs (applies every crossing due by then,
// at its own instant, in (instant, peer) order), then applies its input.
// So the changes a run reports do not depend on when ticks happen, only on
// the heartbeats: ticks decide when a change is reported, never which —
// with one exception, the monitor's own pauses, below.
//
// Own pauses. The monitor hears nothing while its process is stopped (a
// SIGSTOP, a long GC, a VM stall): on resume every peer looks silent for the
// whole pause, and without a check all of them were failed in the same
// millisecond though they had kept beating. So, with selfPauseMs set, the
// monitor asks to be stepped at least every selfTickMs while a peer is live
// (nextStepMs), and a gap of more than selfPauseMs between two steps is
// its own pause: before anything else in that step, every live peer's silence
// clock moves forward by the gap less one selfTickMs (the one tick in which
// it was due to run, and may have heard nothing for real), so crossings that
// fell in the rest of the gap do not happen.
// Moving the clock rather than restarting the peer's window: silence heard
// before the pause still counts and the learned rhythm is kept, so a peer
// that really died is failed after its usual silence, counted outside
// pauses. And since every step counts at least one tick of silence, even a
// monitor that is late at every step (a starved process) fails a dead peer
// in a bounded number of steps; fresh windows at each pause would not.
//
// Incarnations fence the past: a heartbeat or watch naming an older
// incarnation is ignored; a newer one ends the current incarnation (failed,
// if it was not already: a restart means the old process died) and starts
// the new one alive with a fresh window. Failed is final for an incarnation.
//
// Invariants (checkInvariants; tests cite them as M1..M11):
//   M1. Within an incarnation verdicts move only alive→suspected→failed,
//       plus suspected→alive on an accepted heartbeat; failed is final.
//   M2. A peer's incarnation never decreases; inputs naming an older one
//       change nothing (fencing). A new incarnation starts alive, announced
//       by a failed→alive change, after the old one's →failed change.
//   M3. Each peer's changes form a chain (each `from` is the previous `to`,
//       starting at alive) and each has a cause: a crossing at atMs <= now,
//       an accepted heartbeat, or a newer incarnation.
//   M4. After a step no crossing is overdue: every non-failed peer's next
//       crossing is later than the step's nowMs, and is the earliest
//       instant at which its phi reaches the next threshold.
//   M5. nextDeadlineMs() is the earliest pending crossing, null if none.
//   M6. phi is finite and within [0, PHI_CAP].
//   M7. At most maxPeers peers, at most maxSamples intervals each; failed
//       peers hold no deadline.
//   M8. nowMs never goes backwards across steps.
//   M9. Own pause (selfPauseMs > 0): in a step that comes more than
//       selfPauseMs after the previous one while some peer is live, every
//       live peer's silence clock first moves forward by the gap less
//       selfTickMs; of that gap only its last selfTickMs counts as silence,
//       and a crossing that step applies lies in that last tick. A gap of at
//       most selfPauseMs is no pause: it counts whole.
//   M10. Prompt detection: a peer silent since t is failed once its counted
//       silence (M9) reaches its usual fail silence; every step after t
//       counts at least min(gap, selfTickMs), so pauses, even at every step,
//       delay the verdict but never prevent it. The interval spanning a pause
//       is not sampled into the peer's window.
//   M11. nextStepMs() is nextDeadlineMs(), or with selfTickMs > 0 and a live
//       peer lastStep + selfTickMs if earlier: a driver that arms its timer
//       there steps the monitor at least that often, so a longer gap means it
//       did not run.

export type Verdict = 'alive' | 'suspected' | 'failed';

export type MonitorInput =
  | { readonly kind: 'watch'; readonly peer: string; readonly incarnation: bigint }
  | { readonly kind: 'unwatch'; readonly peer: string }
  | { readonly kind: 'heartbeat'; readonly peer: string; readonly incarnation: bigint; readonly sentSeq?: number }
  | { readonly kind: 'tick' };

/** Why an input changed nothing (a protocol outcome, not an error). */
export type IgnoredReason = 'unknown-peer' | 'stale-incarnation' | 'failed-incarnation' | 'stale-seq';

export interface VerdictChange {
  readonly peer: string;
  readonly incarnation: bigint;
  readonly from: Verdict;
  readonly to: Verdict;
  /** phi at atMs, measured before the causing input was applied. */
  readonly phi: number;
  /** Time since the last accepted heartbeat (or the watch) at atMs, the monitor's own pauses not counted. */
  readonly silenceMs: number;
  /** When the change took effect: a crossing's own instant, else the step's nowMs. */
  readonly atMs: number;
}

/** A gap in the monitor's own steps that it excused (M9). */
export interface OwnPause {
  readonly fromMs: number;
  readonly toMs: number;
}

export interface MonitorOutput {
  readonly changes: VerdictChange[];
  readonly ignored: IgnoredReason | null;
  /** Present only when this step found the monitor had been paused. */
  readonly ownPause?: OwnPause;
}

export interface PeerStatus {
  readonly peer: string;
  readonly incarnation: bigint;
  /** As of the last step (call step(tick) first for a fresh verdict). */
  readonly verdict: Verdict;
  readonly phi: number;
  /** Time since the last accepted heartbeat, or since the watch if none yet; own pauses not counted. */
  readonly lastHeartbeatAgeMs: number;
  readonly heartbeats: number;
  /** Intervals in the window, the two bootstrap samples included. */
  readonly samples: number;
  readonly meanIntervalMs: number;
  readonly stdDevIntervalMs: number;
}

export interface MonitorCounters {
  heartbeatsAccepted: number;
  ignoredUnknownPeer: number;
  ignoredStaleIncarnation: number;
  ignoredFailedIncarnation: number;
  ignoredStaleSeq: number;
  suspicions: number;
  recoveries: number;
  failures: number;
  incarnationsStarted: number;
  /** Own pauses excused (M9), and the total time excused. */
  ownPauses: number;
  ownPausedMs: number;
}

interface PeerState extends HeapItem {
  readonly name: string;
  incarnation: bigint;
  verdict: Verdict;
  detector: PhiAccrual;
  lastSeq: number | null;
  deadlineMs: number;
  heapIndex: number;
}

const INPUT_KINDS: ReadonlySet<string> = new Set<MonitorInput['kind']>(['watch', 'unwatch', 'heartbeat', 'tick']);

const IGNORED_COUNTER: Record<IgnoredReason, keyof MonitorCounters> = {
  'unknown-peer': 'ignoredUnknownPeer',
  'stale-incarnation': 'ignoredStaleIncarnation',
  'failed-incarnation': 'ignoredFailedIncarnation',
  'stale-seq': 'ignoredStaleSeq',
};

export class Monitor {
  readonly config: DetectorConfig;
  private readonly peers = new Map<string, PeerState>();
  private readonly heap: DeadlineHeap<PeerState>;
  private nowMs = -Infinity;
  private readonly counts: MonitorCounters = {
    heartbeatsAccepted: 0,
    ignoredUnknownPeer: 0,
    ignoredStaleIncarnation: 0,
    ignoredFailedIncarnation: 0,
    ignoredStaleSeq: 0,
    suspicions: 0,
    recoveries: 0,
    failures: 0,
    incarnationsStarted: 0,
    ownPauses: 0,
    ownPausedMs: 0,
  };

  constructor(config: DetectorConfig) {
    this.config = validateDetectorConfig({ ...config });
    this.heap = new DeadlineHeap<PeerState>(this.config.maxPeers);
  }

  step(input: MonitorInput, nowMs: number): MonitorOutput {
    this.checkInput(input, nowMs);
    const changes: VerdictChange[] = [];
    const ownPause = this.excuseOwnPause(nowMs);
    this.advanceTo(nowMs, changes);
    this.nowMs = nowMs;
    let ignored: IgnoredReason | null = null;
    switch (input.kind) {
      case 'watch':
        ignored = this.onWatch(input.peer, input.incarnation, nowMs, changes);
        break;
      case 'unwatch':
        ignored = this.onUnwatch(input.peer);
        break;
      case 'heartbeat':
        ignored = this.onHeartbeat(input.peer, input.incarnation, input.sentSeq, nowMs, changes);
        break;
      case 'tick':
        break;
      default: {
        const never: never = input;
        throw invalidArgument(`unknown monitor input ${JSON.stringify(never)}`);
      }
    }
    if (ignored !== null) this.counts[IGNORED_COUNTER[ignored]] += 1;
    return ownPause === null ? { changes, ignored } : { changes, ignored, ownPause };
  }

  /** The earliest instant at which a verdict changes if no heartbeat comes. */
  nextDeadlineMs(): number | null {
    return this.heap.peek()?.deadlineMs ?? null;
  }

  /** When the monitor wants its next step (M11): the next crossing, or its own tick if earlier. */
  nextStepMs(): number | null {
    const crossing = this.nextDeadlineMs();
    const selfTickMs = this.config.selfTickMs ?? 0;
    if (crossing === null || selfTickMs === 0) return crossing;
    return Math.min(crossing, this.nowMs + selfTickMs);
  }

  status(nowMs: number): PeerStatus[] {
    const out: PeerStatus[] = [];
    for (const st of this.peers.values()) {
      const d = st.detector;
      out.push({
        peer: st.name,
        incarnation: st.incarnation,
        verdict: st.verdict,
        phi: d.phiAt(nowMs),
        lastHeartbeatAgeMs: Math.max(0, nowMs - d.lastArrivalMs),
        heartbeats: d.heartbeats,
        samples: d.samples,
        meanIntervalMs: d.windowMeanMs,
        stdDevIntervalMs: d.windowStdDevMs,
      });
    }
    return out.sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0));
  }

  counters(): MonitorCounters {
    return { ...this.counts };
  }

  get peerCount(): number {
    return this.peers.size;
  }

  // ---- inputs ------------------------------------------------------------

  private checkInput(input: MonitorInput, nowMs: number): void {
    if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) throw invalidArgument(`bad time ${String(nowMs)}`);
    if (nowMs < this.nowMs) throw invalidArgument(`time went backwards: ${nowMs} after ${this.nowMs}`);
    if (input === null || typeof input !== 'object') throw invalidArgument('monitor input must be an object');
    if (!INPUT_KINDS.has(input.kind)) throw invalidArgument(`unknown monitor input kind ${String(input.kind)}`);
    if (input.kind === 'tick') return;
    if (typeof input.peer !== 'string') throw invalidArgument(`bad peer ${String(input.peer)}: expected a string`);
    checkName('peer', input.peer);
    if (input.kind === 'unwatch') return;
    if (typeof input.incarnation !== 'bigint' || input.incarnation < 0n) {
      throw invalidArgument(`bad incarnation ${String(input.incarnation)} of peer ${input.peer}`);
    }
    if (input.kind === 'heartbeat' && input.sentSeq !== undefined) {
      if (!Number.isSafeInteger(input.sentSeq) || input.sentSeq < 0) {
        throw invalidArgument(`bad heartbeat sequence number ${String(input.sentSeq)} from ${input.peer}`);
      }
    }
    if (input.kind === 'watch' && !this.peers.has(input.peer) && this.peers.size >= this.config.maxPeers) {
      throw new GridError('resource-exhausted', `cannot watch ${input.peer}: already ${this.config.maxPeers} peers`);
    }
  }

  private onWatch(peer: string, incarnation: bigint, nowMs: number, changes: VerdictChange[]): IgnoredReason | null {
    const st = this.peers.get(peer);
    if (st === undefined) {
      const fresh: PeerState = {
        name: peer,
        incarnation,
        verdict: 'alive',
        detector: new PhiAccrual(this.config, nowMs),
        lastSeq: null,
        deadlineMs: Infinity,
        heapIndex: -1,
      };
      this.peers.set(peer, fresh);
      this.counts.incarnationsStarted += 1;
      this.armNextCrossing(fresh);
      return null;
    }
    if (incarnation < st.incarnation) return 'stale-incarnation';
    if (incarnation > st.incarnation) this.startIncarnation(st, incarnation, nowMs, changes);
    return null; // the same incarnation again: nothing to do
  }

  private onUnwatch(peer: string): IgnoredReason | null {
    const st = this.peers.get(peer);
    if (st === undefined) return 'unknown-peer';
    this.heap.remove(st);
    this.peers.delete(peer);
    return null;
  }

  private onHeartbeat(
    peer: string,
    incarnation: bigint,
    sentSeq: number | undefined,
    nowMs: number,
    changes: VerdictChange[],
  ): IgnoredReason | null {
    const st = this.peers.get(peer);
    if (st === undefined) return 'unknown-peer';
    if (incarnation < st.incarnation) return 'stale-incarnation';
    if (incarnation > st.incarnation) {
      this.startIncarnation(st, incarnation, nowMs, changes);
    } else {
      if (st.verdict === 'failed') return 'failed-incarnation';
      if (sentSeq !== undefined && st.lastSeq !== null && sentSeq <= st.lastSeq) return 'stale-seq';
      if (st.verdict === 'suspected') this.become(st, 'alive', nowMs, changes);
    }
    st.detector.heartbeat(nowMs);
    if (sentSeq !== undefined) st.lastSeq = sentSeq;
    this.counts.heartbeatsAccepted += 1;
    this.armNextCrossing(st);
    return null;
  }

  // ---- transitions -------------------------------------------------------

  /** M9: a gap above selfPauseMs while a peer is live is the monitor's own pause; only its last tick counts as silence. */
  private excuseOwnPause(nowMs: number): OwnPause | null {
    const selfPauseMs = this.config.selfPauseMs ?? 0;
    const gapMs = nowMs - this.nowMs;
    if (selfPauseMs === 0 || this.heap.size === 0 || !(gapMs > selfPauseMs)) return null;
    const excusedMs = gapMs - (this.config.selfTickMs ?? 0);
    for (const st of this.peers.values()) {
      if (st.verdict === 'failed') continue;
      st.detector.excuse(excusedMs);
      this.armNextCrossing(st);
    }
    this.counts.ownPauses += 1;
    this.counts.ownPausedMs += excusedMs;
    return { fromMs: this.nowMs, toMs: nowMs };
  }

  /** Applies every crossing due by nowMs, each at its own instant. */
  private advanceTo(nowMs: number, changes: VerdictChange[]): void {
    const limit = 2 * this.peers.size; // each peer crosses at most twice
    for (let n = 0; ; n += 1) {
      const st = this.heap.peek();
      if (st === undefined || st.deadlineMs > nowMs) return;
      assert(n < limit, 'crossings did not converge');
      const atMs = st.deadlineMs;
      if (st.verdict === 'alive') {
        this.become(st, 'suspected', atMs, changes);
      } else {
        if (!(st.verdict === 'suspected')) assert(false, `failed peer ${st.name} holds a deadline`);
        this.become(st, 'failed', atMs, changes);
      }
      this.armNextCrossing(st);
    }
  }

  /** A newer incarnation: the old one is over, the new one starts alive. */
  private startIncarnation(st: PeerState, incarnation: bigint, nowMs: number, changes: VerdictChange[]): void {
    assert(incarnation > st.incarnation, 'incarnations only grow');
    if (st.verdict !== 'failed') this.become(st, 'failed', nowMs, changes);
    const phi = st.detector.phiAt(nowMs);
    const silenceMs = nowMs - st.detector.lastArrivalMs;
    changes.push({ peer: st.name, incarnation, from: 'failed', to: 'alive', phi, silenceMs, atMs: nowMs });
    st.incarnation = incarnation;
    st.verdict = 'alive';
    st.detector = new PhiAccrual(this.config, nowMs);
    st.lastSeq = null;
    this.counts.incarnationsStarted += 1;
    this.armNextCrossing(st);
  }

  private become(st: PeerState, to: Verdict, atMs: number, changes: VerdictChange[]): void {
    const from = st.verdict;
    const legal =
      (from === 'alive' && to === 'suspected') ||
      (from === 'suspected' && (to === 'failed' || to === 'alive')) ||
      (from === 'alive' && to === 'failed'); // only when a newer incarnation ends this one
    if (!(legal)) assert(false, `illegal verdict change ${from}→${to} for ${st.name}`);
    const phi = st.detector.phiAt(atMs);
    const silenceMs = atMs - st.detector.lastArrivalMs;
    changes.push({ peer: st.name, incarnation: st.incarnation, from, to, phi, silenceMs, atMs });
    st.verdict = to;
    if (to === 'suspected') this.counts.suspicions += 1;
    else if (to === 'failed') this.counts.failures += 1;
    else this.counts.recoveries += 1;
  }

  private thresholdFor(verdict: Verdict): number | null {
    switch (verdict) {
      case 'alive':
        return this.config.suspectPhi;
      case 'suspected':
        return this.config.failPhi;
      case 'failed':
        return null;
      default: {
        const never: never = verdict;
        throw new Error(`unknown verdict ${String(never)}`);
      }
    }
  }

  private armNextCrossing(st: PeerState): void {
    const threshold = this.thresholdFor(st.verdict);
    if (threshold === null) {
      this.heap.remove(st);
      st.deadlineMs = Infinity;
    } else {
      this.heap.set(st, st.detector.crossingMs(threshold));
    }
  }

  // ---- checks ------------------------------------------------------------

  checkInvariants(): void {
    validateDetectorConfig(this.config);
    assert(this.peers.size <= this.config.maxPeers, 'M7: too many peers');
    this.heap.checkInvariants();
    let pending = 0;
    for (const [name, st] of this.peers) {
      assert(st.name === name, `peer ${name} stored as ${st.name}`);
      st.detector.checkInvariants();
      assert(st.detector.samples <= this.config.maxSamples, 'M7: window over maxSamples');
      assert(st.detector.lastArrivalMs <= this.nowMs, 'M8: a heartbeat from the future');
      const phiNow = st.detector.phiAt(this.nowMs);
      assert(Number.isFinite(phiNow) && phiNow >= 0, `M6: phi ${phiNow}`);
      const threshold = this.thresholdFor(st.verdict);
      if (threshold === null) {
        assert(!this.heap.has(st), `M7: failed peer ${name} holds a deadline`);
        continue;
      }
      pending += 1;
      this.checkCrossing(st, threshold, phiNow);
    }
    assert(this.heap.size === pending, 'M5: heap and peers disagree');
    const selfTickMs = this.config.selfTickMs ?? 0;
    if (selfTickMs > 0 && pending > 0) {
      assert(this.nextStepMs()! <= this.nowMs + selfTickMs, 'M11: the monitor asks for no step within selfTickMs');
    }
  }

  private checkCrossing(st: PeerState, threshold: number, phiNow: number): void {
    const d = st.detector;
    assert(this.heap.has(st), `M5: ${st.name} has no deadline`);
    assert(st.deadlineMs === d.crossingMs(threshold), `M4: ${st.name}'s deadline is stale`);
    assert(st.deadlineMs > this.nowMs, `M4: ${st.name}'s crossing at ${st.deadlineMs} is overdue at ${this.nowMs}`);
    assert(phiNow < threshold, `M4: ${st.name} is ${st.verdict} at phi ${phiNow}`);
    assert(d.phiAt(st.deadlineMs) >= threshold, `M4: phi below ${threshold} at ${st.name}'s crossing`);
    const early = st.deadlineMs - 1e-3;
    if (early >= d.lastArrivalMs) assert(d.phiAt(early) < threshold, `M4: ${st.name}'s crossing is late`);
  }
}
