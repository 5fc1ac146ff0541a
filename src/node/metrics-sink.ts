// What the agent reports as it works; metrics.ts turns it into Prometheus
// series, tests and the simulator can pass a plain recorder.

export interface CheckpointFigures {
  freezeWindowMs: number;
  writeMs: number;
  bytes: number;
  pages: number;
}

export interface AgentMetricsSink {
  checkpointCommitted(f: CheckpointFigures): void;
  /**
   * This node's part of a coordinator's round is durable (its bytes are
   * exported, whether or not the round then commits: the coordinator decides).
   */
  partWritten(f: CheckpointFigures): void;
  /** A coordinator built on an epoch holding this node's part: it is known committed. */
  partConfirmed(): void;
  checkpointFailed(stage: 'freeze' | 'snapshot' | 'write'): void;
  restored(ms: number, fellBack: boolean): void;
  unitExited(clean: boolean): void;
  /** A job's lease lapsed and its units were killed. */
  leaseLapsed(): void;
}
