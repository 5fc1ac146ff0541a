import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { RoundOutcome } from '../protocol/core/round.js';
import type { VerdictChange } from '../detector/index.js';

// The cluster tier's only prom-client importer.

const ROUND_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class ClusterMetrics {
  readonly registry = new Registry();
  private readonly rounds: Counter<'outcome'>;
  private readonly roundSeconds: Histogram<'phase'>;
  private readonly failures: Counter;
  private readonly recoveries: Counter<'outcome'>;
  private readonly recoverySeconds: Histogram;
  private readonly fenced: Counter;

  /** peers: each node's phi and heartbeat age now (the core's detector). */
  constructor(peers: () => ReadonlyArray<{ nodeId: string; phi: number; silenceMs: number }>) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'gridckpt_cluster_process_' });
    this.rounds = new Counter({ name: 'gridckpt_cluster_rounds_total', help: 'Coordinated rounds by outcome', labelNames: ['outcome'], registers });
    this.roundSeconds = new Histogram({ name: 'gridckpt_cluster_round_seconds', help: 'Committed rounds: time per phase and in total', labelNames: ['phase'], buckets: ROUND_BUCKETS_S, registers });
    this.failures = new Counter({ name: 'gridckpt_cluster_node_failures_detected_total', help: 'Nodes declared failed by the detector', registers });
    this.recoveries = new Counter({ name: 'gridckpt_cluster_recoveries_total', help: 'Job recoveries by outcome', labelNames: ['outcome'], registers });
    this.recoverySeconds = new Histogram({ name: 'gridckpt_cluster_recovery_seconds', help: 'Time from a failure verdict to the job running again', buckets: ROUND_BUCKETS_S, registers });
    this.fenced = new Counter({ name: 'gridckpt_cluster_grid_lease_lapses_total', help: 'Grid jobs whose grid lease lapsed here, their units stopped (fencing)', registers });
    new Gauge({ name: 'gridckpt_cluster_heartbeat_age_seconds', help: 'Time since the last heartbeat, per node', labelNames: ['node'], registers, collect() {
      this.reset();
      for (const p of peers()) this.set({ node: p.nodeId }, p.silenceMs / 1000);
    } });
    new Gauge({ name: 'gridckpt_cluster_heartbeat_phi', help: 'Phi accrual suspicion, per node', labelNames: ['node'], registers, collect() {
      this.reset();
      for (const p of peers()) this.set({ node: p.nodeId }, p.phi);
    } });
  }

  roundFinished(o: RoundOutcome): void {
    this.rounds.inc({ outcome: o.kind });
    if (o.kind === 'committed') {
      this.roundSeconds.observe({ phase: 'prepare' }, o.timings.prepareMs / 1000);
      this.roundSeconds.observe({ phase: 'commit' }, o.timings.commitMs / 1000);
      this.roundSeconds.observe({ phase: 'total' }, o.timings.totalMs / 1000);
    }
  }

  nodeVerdict(c: VerdictChange): void {
    if (c.to === 'failed') this.failures.inc();
  }

  jobFenced(_jobId: string): void {
    this.fenced.inc();
  }

  recovered(_jobId: string, ms: number, ok: boolean): void {
    this.recoveries.inc({ outcome: ok ? 'ok' : 'failed' });
    if (ok) this.recoverySeconds.observe(ms / 1000);
  }
}
