import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { RoundOutcome } from '../protocol/core/round.js';
import type { VerdictChange } from '../detector/index.js';

// The grid tier's only prom-client importer: what the core's events and views say.

export class GridMetrics {
  readonly registry = new Registry();
  private readonly rounds: Counter<'outcome'>;
  private readonly failures: Counter;
  private readonly recoveries: Counter<'outcome'>;
  private readonly recoverySeconds: Histogram;

  /** peers: each cluster's phi and heartbeat age now (the core's detector). */
  constructor(peers: () => ReadonlyArray<{ clusterId: string; phi: number; silenceMs: number }>) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'gridckpt_grid_process_' });
    this.rounds = new Counter({ name: 'gridckpt_grid_rounds_total', help: 'Grid rounds by outcome', labelNames: ['outcome'], registers });
    this.failures = new Counter({ name: 'gridckpt_grid_cluster_failures_detected_total', help: 'Clusters declared failed', registers });
    this.recoveries = new Counter({ name: 'gridckpt_grid_recoveries_total', help: 'Job recoveries by outcome', labelNames: ['outcome'], registers });
    this.recoverySeconds = new Histogram({
      name: 'gridckpt_grid_recovery_seconds', help: 'From starting a recovery (lease wait included) to the job running again',
      buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64], registers,
    });
    new Gauge({ name: 'gridckpt_grid_heartbeat_phi', help: 'Phi accrual suspicion, per cluster', labelNames: ['cluster'], registers, collect() {
      this.reset();
      for (const p of peers()) this.set({ cluster: p.clusterId }, p.phi);
    } });
    new Gauge({ name: 'gridckpt_grid_heartbeat_age_seconds', help: 'Time since the last heartbeat, per cluster', labelNames: ['cluster'], registers, collect() {
      this.reset();
      for (const p of peers()) this.set({ cluster: p.clusterId }, p.silenceMs / 1000);
    } });
  }

  roundFinished(o: RoundOutcome): void {
    this.rounds.inc({ outcome: o.kind });
  }

  clusterVerdict(c: VerdictChange): void {
    if (c.to === 'failed') this.failures.inc();
  }

  recovered(ms: number, ok: boolean): void {
    this.recoveries.inc({ outcome: ok ? 'ok' : 'failed' });
    if (ok) this.recoverySeconds.observe(ms / 1000);
  }
}
