import { assert, invalidArgument } from '../common/errors.js';
import { PHI_CAP } from './phi-accrual.js';

// The detector's one validated config (CONVENTIONS §6: every bound named).
//
// Why the defaults (100 ms heartbeats; the product asks that a killed node
// agent be declared failed within 2 s and that a 500 ms stall is not):
//   - acceptablePauseMs 300 and minStdDevMs 100 make phi, for a punctual
//     peer, a normal tail centred at 400 ms of silence with a 100 ms spread.
//   - suspectPhi 5 is reached after 811.9 ms of silence, failPhi 8 after
//     922.6 ms (see test/detector/phi-accrual.test.ts for the computation).
//     A dead peer is failed < 1 s after its last heartbeat: half the 2 s
//     budget, the rest left for peers whose learned spread is wider (still
//     < 2 s while the window's standard deviation stays below ~300 ms) and
//     for the shell's timer latency.
//   - A 500 ms stall reaches only phi 0.80 and 700 ms phi 2.9: stalls up to
//     ~800 ms are neither suspected nor failed.
//   - maxSamples 200 is 20 s of history at 100 ms: long enough that one
//     stall does not swing the mean, short enough to follow a change of
//     network; maxPeers 4096 bounds memory at ~6.5 MB of windows.
// For another heartbeat interval, scaleDetectorConfig keeps the same shape.
//
// The monitor's own pauses (a SIGSTOP, a GC, a VM stall of the coordinator):
// silence it could not hear, since it was not running, must not convict its
// peers (monitor.ts, M9-M11). selfTickMs and selfPauseMs turn that check on:
// the monitor asks to be stepped every selfTickMs while it watches a live
// peer, and a gap above selfPauseMs between two steps is its own pause.
// scaleDetectorConfig, what the processes use, sets selfTickMs to one
// heartbeat interval and selfPauseMs to one interval more than the stall phi
// already shrugs off (acceptablePauseMs; 400 ms at the defaults): timer
// lateness and short event-loop stalls are no pause, yet any stop long
// enough to convict a punctual peer (~900 ms) is. They are off (0) in
// DEFAULT_DETECTOR_CONFIG, the bare phi detector that exact tests step only
// at its deadlines.

export interface DetectorConfig {
  /** How often peers send heartbeats; seeds a new peer's window. */
  readonly heartbeatIntervalMs: number;
  /** phi at which an alive peer becomes suspected. */
  readonly suspectPhi: number;
  /** phi at which a peer is failed (final for its incarnation). */
  readonly failPhi: number;
  /** Floor of the standard deviation used by phi. */
  readonly minStdDevMs: number;
  /** Added to the mean interval: a pause this long costs nothing. */
  readonly acceptablePauseMs: number;
  /** Inter-arrival times kept per peer. */
  readonly maxSamples: number;
  /** Peers watched at once. */
  readonly maxPeers: number;
  /** While a peer is live, the monitor wants a step at least this often (0 or absent: no own-pause check). */
  readonly selfTickMs?: number;
  /** A gap longer than this between two steps is the monitor's own pause (0 or absent: no own-pause check). */
  readonly selfPauseMs?: number;
}

export const DEFAULT_DETECTOR_CONFIG: DetectorConfig = Object.freeze({
  heartbeatIntervalMs: 100,
  suspectPhi: 5,
  failPhi: 8,
  minStdDevMs: 100,
  acceptablePauseMs: 300,
  maxSamples: 200,
  maxPeers: 4096,
  selfTickMs: 0,
  selfPauseMs: 0,
});

/** The defaults' shape for another interval (times scale, phi does not). */
export function scaleDetectorConfig(heartbeatIntervalMs: number, overrides: Partial<DetectorConfig> = {}): DetectorConfig {
  const k = heartbeatIntervalMs / DEFAULT_DETECTOR_CONFIG.heartbeatIntervalMs;
  const shaped: DetectorConfig = {
    ...DEFAULT_DETECTOR_CONFIG,
    heartbeatIntervalMs,
    minStdDevMs: DEFAULT_DETECTOR_CONFIG.minStdDevMs * k,
    acceptablePauseMs: DEFAULT_DETECTOR_CONFIG.acceptablePauseMs * k,
    ...overrides,
  };
  return validateDetectorConfig({
    ...shaped,
    selfTickMs: overrides.selfTickMs ?? heartbeatIntervalMs,
    selfPauseMs: overrides.selfPauseMs ?? Math.max(shaped.acceptablePauseMs, heartbeatIntervalMs) + heartbeatIntervalMs,
  });
}

const MAX_SAMPLES = 100_000;
const MAX_PEERS = 1_000_000;
const MAX_TIME_MS = 24 * 3600 * 1000;
/** The largest threshold accepted: 1e-100 is as sure as anything gets. */
export const MAX_THRESHOLD_PHI = 100;
assert(MAX_THRESHOLD_PHI < PHI_CAP, 'PHI_CAP must exceed every threshold');

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function checkNumber(what: string, value: unknown, min: number, max: number, integer: boolean): void {
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    value >= min &&
    value <= max &&
    (!integer || Number.isSafeInteger(value));
  if (!ok) {
    const kind = integer ? 'an integer' : 'a number';
    throw invalidArgument(`bad detector ${what} ${describe(value)}: expected ${kind} from ${min} to ${max}`);
  }
}

export function validateDetectorConfig(config: DetectorConfig): DetectorConfig {
  checkNumber('heartbeatIntervalMs', config.heartbeatIntervalMs, 1, MAX_TIME_MS, false);
  checkNumber('minStdDevMs', config.minStdDevMs, 0.001, MAX_TIME_MS, false);
  checkNumber('acceptablePauseMs', config.acceptablePauseMs, 0, MAX_TIME_MS, false);
  // phi at zero silence is at most log10(2): thresholds from 1 are crossed strictly later.
  checkNumber('suspectPhi', config.suspectPhi, 1, MAX_THRESHOLD_PHI, false);
  checkNumber('failPhi', config.failPhi, 1, MAX_THRESHOLD_PHI, false);
  if (!(config.failPhi > config.suspectPhi)) {
    throw invalidArgument(`detector failPhi ${config.failPhi} must be above suspectPhi ${config.suspectPhi}`);
  }
  checkNumber('maxSamples', config.maxSamples, 2, MAX_SAMPLES, true);
  checkNumber('maxPeers', config.maxPeers, 1, MAX_PEERS, true);
  const selfTickMs = config.selfTickMs ?? 0;
  const selfPauseMs = config.selfPauseMs ?? 0;
  checkNumber('selfTickMs', selfTickMs, 0, MAX_TIME_MS, false);
  checkNumber('selfPauseMs', selfPauseMs, 0, MAX_TIME_MS, false);
  // Steps come every selfTickMs plus timer lateness: a pause must be well beyond that.
  const off = selfTickMs === 0 && selfPauseMs === 0;
  if (!off && !(selfTickMs > 0 && selfPauseMs >= 2 * selfTickMs)) {
    throw invalidArgument(
      `detector selfPauseMs ${selfPauseMs} must be at least twice selfTickMs ${selfTickMs} (both 0 turns the own-pause check off)`,
    );
  }
  return config;
}
