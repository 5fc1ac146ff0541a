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
  checkpointFailed(stage: 'freeze' | 'snapshot' | 'write'): void;
  restored(ms: number, fellBack: boolean): void;
  unitExited(clean: boolean): void;
  /** A job's lease lapsed and its units were killed. */
  leaseLapsed(): void;
}
