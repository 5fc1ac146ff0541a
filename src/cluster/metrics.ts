import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { RoundOutcome } from '../protocol/core/round.js';
import type { VerdictChange } from '../detector/index.js';

// The cluster tier's only prom-client importer.

/** What the store's garbage collection and the store's file system say, for the gauges. */
export interface StoreView {
  /** Per job: committed epochs in the store as the collector knows them, and how many it retired so far. */
  jobs: ReadonlyArray<{ jobId: string; epochs: number; retired: number }>;
  retireFailures: number;
  /** statfs of the store (null: could not be read). */
  space: () => Promise<{ freeBytes: number; sizeBytes: number } | null>;
}

/** A round aborted because its store is full (a part or the manifest could not be written). */
export function isStoreFull(reason: string): boolean {
  return /ENOSPC|no space left on device/i.test(reason);
}

const ROUND_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class ClusterMetrics {
  readonly registry = new Registry();
  private readonly rounds: Counter<'outcome'>;
  private readonly roundSeconds: Histogram<'phase'>;
  private readonly failures: Counter;
  private readonly recoveries: Counter<'outcome'>;
  private readonly recoverySeconds: Histogram;
  private readonly fenced: Counter;
  private readonly storeFull: Counter;
  private readonly staleGrid: Counter;

  /** peers: each node's phi and heartbeat age now (the core's detector). */
  constructor(peers: () => ReadonlyArray<{ nodeId: string; phi: number; silenceMs: number }>, store: () => StoreView | null = () => null) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'gridckpt_cluster_process_' });
    this.rounds = new Counter({ name: 'gridckpt_cluster_rounds_total', help: 'Coordinated rounds by outcome', labelNames: ['outcome'], registers });
    this.roundSeconds = new Histogram({ name: 'gridckpt_cluster_round_seconds', help: 'Committed rounds: time per phase and in total', labelNames: ['phase'], buckets: ROUND_BUCKETS_S, registers });
    this.failures = new Counter({ name: 'gridckpt_cluster_node_failures_detected_total', help: 'Nodes declared failed by the detector', registers });
    this.recoveries = new Counter({ name: 'gridckpt_cluster_recoveries_total', help: 'Job recoveries by outcome', labelNames: ['outcome'], registers });
    this.recoverySeconds = new Histogram({ name: 'gridckpt_cluster_recovery_seconds', help: 'Time from a failure verdict to the job running again', buckets: ROUND_BUCKETS_S, registers });
    this.fenced = new Counter({ name: 'gridckpt_cluster_grid_lease_lapses_total', help: 'Grid jobs whose grid lease lapsed here, their units stopped (fencing)', registers });
    this.staleGrid = new Counter({ name: 'gridckpt_cluster_stale_grid_calls_total', help: 'Grid calls refused because they came from a deposed grid (an older leader term or incarnation)', registers });
    this.storeFull = new Counter({ name: 'gridckpt_cluster_store_full_total', help: 'Rounds aborted because the store was full (ENOSPC)', registers });
    new Gauge({ name: 'gridckpt_cluster_store_epochs', help: 'Committed epochs of a job in the store (as garbage collection knows them)', labelNames: ['job'], registers, collect() {
      this.reset();
      for (const j of store()?.jobs ?? []) this.set({ job: j.jobId }, j.epochs);
    } });
    let retiredSeen = 0;
    new Counter({ name: 'gridckpt_cluster_epochs_retired_total', help: 'Committed epochs deleted by garbage collection', registers, collect() {
      const total = (store()?.jobs ?? []).reduce((s, j) => s + j.retired, 0);
      if (total > retiredSeen) this.inc(total - retiredSeen);
      retiredSeen = Math.max(retiredSeen, total);
    } });
    let failuresSeen = 0;
    new Counter({ name: 'gridckpt_cluster_retire_failures_total', help: 'Retirements of epochs that failed (the epoch stays; retried on the next commit)', registers, collect() {
      const total = store()?.retireFailures ?? 0;
      if (total > failuresSeen) this.inc(total - failuresSeen);
      failuresSeen = Math.max(failuresSeen, total);
    } });
    new Gauge({ name: 'gridckpt_cluster_store_free_bytes', help: 'Free bytes of the store\'s file system', registers, async collect() {
      const s = await store()?.space();
      if (s) this.set(s.freeBytes);
    } });
    new Gauge({ name: 'gridckpt_cluster_store_size_bytes', help: 'Size of the store\'s file system', registers, async collect() {
      const s = await store()?.space();
      if (s) this.set(s.sizeBytes);
    } });
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
    if (o.kind === 'aborted' && isStoreFull(o.reason)) this.storeFull.inc();
    if (o.kind === 'committed') {
      this.roundSeconds.observe({ phase: 'prepare' }, o.timings.prepareMs / 1000);
      this.roundSeconds.observe({ phase: 'commit' }, o.timings.commitMs / 1000);
      this.roundSeconds.observe({ phase: 'total' }, o.timings.totalMs / 1000);
    }
  }

  nodeVerdict(c: VerdictChange): void {
    if (c.to === 'failed') this.failures.inc();
  }

  staleGridCall(): void {
    this.staleGrid.inc();
  }

  jobFenced(_jobId: string): void {
    this.fenced.inc();
  }

  recovered(_jobId: string, ms: number, ok: boolean): void {
    this.recoveries.inc({ outcome: ok ? 'ok' : 'failed' });
    if (ok) this.recoverySeconds.observe(ms / 1000);
  }
}
