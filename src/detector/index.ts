// The detector's public surface: the pure core (phi accrual, monitor, config)
// and its two thin shells (the sender's heartbeat loop, the receiver's driver).

export { DEFAULT_DETECTOR_CONFIG, type DetectorConfig, scaleDetectorConfig, validateDetectorConfig } from './config.js';
export { startHeartbeats, type HeartbeatLoop, type HeartbeatLoopOptions, type HeartbeatStats } from './heartbeat-loop.js';
export {
  Monitor,
  type IgnoredReason,
  type MonitorCounters,
  type MonitorInput,
  type MonitorOutput,
  type OwnPause,
  type PeerStatus,
  type Verdict,
  type VerdictChange,
} from './monitor.js';
export { PHI_CAP, PhiAccrual, phiOf, silenceForPhi } from './phi-accrual.js';
export type { Clock, TimerPort } from './ports.js';
