import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { AgentMetricsSink, CheckpointFigures } from './metrics-sink.js';
import type { AgentStatus } from './agent.js';

// The node tier's only prom-client importer. Counters and histograms are fed
// by the sink; gauges are read from the agent's status() at scrape time.

const FREEZE_BUCKETS_S = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];
const WRITE_BUCKETS_S = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class AgentMetrics implements AgentMetricsSink {
  readonly registry = new Registry();
  private readonly checkpoints: Counter<'outcome' | 'stage'>;
  private readonly freezeWindow: Histogram;
  private readonly writeSeconds: Histogram;
  private readonly exportedBytes: Counter;
  private readonly exportedPages: Counter;
  private readonly restores: Counter<'fallback'>;
  private readonly restoreSeconds: Histogram;
  private readonly unitExits: Counter<'clean'>;
  private readonly leaseLapses: Counter;

  constructor(status: () => AgentStatus) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'gridckpt_node_process_' });
    this.checkpoints = new Counter({ name: 'gridckpt_node_checkpoints_total', help: 'Checkpoints by outcome (committed; part_durable: a round\'s part written; failed, by stage)', labelNames: ['outcome', 'stage'], registers });
    this.freezeWindow = new Histogram({ name: 'gridckpt_node_freeze_window_seconds', help: 'Time units stayed frozen per checkpoint', buckets: FREEZE_BUCKETS_S, registers });
    this.writeSeconds = new Histogram({ name: 'gridckpt_node_epoch_write_seconds', help: 'Time to write and commit an epoch after thaw', buckets: WRITE_BUCKETS_S, registers });
    this.exportedBytes = new Counter({ name: 'gridckpt_node_exported_bytes_total', help: 'Page bytes written to checkpoint images', registers });
    this.exportedPages = new Counter({ name: 'gridckpt_node_exported_pages_total', help: 'Pages written to checkpoint images', registers });
    this.restores = new Counter({ name: 'gridckpt_node_restores_total', help: 'Restores, by whether an older epoch had to be used', labelNames: ['fallback'], registers });
    this.restoreSeconds = new Histogram({ name: 'gridckpt_node_restore_seconds', help: 'Time to load an epoch', buckets: WRITE_BUCKETS_S, registers });
    this.unitExits = new Counter({ name: 'gridckpt_node_unit_exits_total', help: 'Unit process exits', labelNames: ['clean'], registers });
    this.leaseLapses = new Counter({ name: 'gridckpt_node_lease_lapses_total', help: 'Jobs whose lease lapsed, their units killed (fencing)', registers });
    const memory = new Gauge({ name: 'gridckpt_node_memory_pages', help: 'Pages by where they are', labelNames: ['where'], registers, collect() {
      const m = status().memory;
      this.set({ where: 'resident' }, m.pagesResident);
      this.set({ where: 'swapped' }, m.pagesSwapped);
      this.set({ where: 'total' }, m.pagesTotal);
    } });
    void memory;
    new Gauge({ name: 'gridckpt_node_memory_budget_bytes', help: 'Page memory budget', registers, collect() {
      this.set(status().memory.budgetBytes);
    } });
    new Counter({ name: 'gridckpt_node_swap_outs_total', help: 'Pages written to swap', registers, collect() {
      this.reset();
      this.inc(status().memory.swapOuts);
    } });
    new Counter({ name: 'gridckpt_node_swap_ins_total', help: 'Pages read back from swap', registers, collect() {
      this.reset();
      this.inc(status().memory.swapIns);
    } });
    new Gauge({ name: 'gridckpt_node_freezer_info', help: 'Freezer in use (value 1)', labelNames: ['kind'], registers, collect() {
      this.reset();
      this.set({ kind: status().freezer }, 1);
    } });
    new Gauge({ name: 'gridckpt_node_jobs', help: 'Jobs by state', labelNames: ['state'], registers, collect() {
      this.reset();
      for (const j of status().jobs) this.inc({ state: j.state });
    } });
  }

  checkpointCommitted(f: CheckpointFigures): void {
    this.checkpoints.inc({ outcome: 'committed', stage: '' });
    this.freezeWindow.observe(f.freezeWindowMs / 1000);
    this.writeSeconds.observe(f.writeMs / 1000);
    this.exportedBytes.inc(f.bytes);
    this.exportedPages.inc(f.pages);
  }

  partWritten(f: CheckpointFigures): void {
    this.checkpoints.inc({ outcome: 'part_durable', stage: '' });
    this.freezeWindow.observe(f.freezeWindowMs / 1000);
    this.writeSeconds.observe(f.writeMs / 1000);
    this.exportedBytes.inc(f.bytes);
    this.exportedPages.inc(f.pages);
  }

  partConfirmed(): void {
    this.checkpoints.inc({ outcome: 'committed', stage: '' });
  }

  checkpointFailed(stage: 'freeze' | 'snapshot' | 'write'): void {
    this.checkpoints.inc({ outcome: 'failed', stage });
  }

  restored(ms: number, fellBack: boolean): void {
    this.restores.inc({ fallback: String(fellBack) });
    this.restoreSeconds.observe(ms / 1000);
  }

  unitExited(clean: boolean): void {
    this.unitExits.inc({ clean: String(clean) });
  }

  leaseLapsed(): void {
    this.leaseLapses.inc();
  }
}
