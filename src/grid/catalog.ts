import { DurableJson } from '../runtime/durable-json.js';
import type { StoredJobSpec } from '../store/index.js';
import type { GridJobRow, GridLine } from './core/supervisor-types.js';

// The grid catalog (`catalog.json` in the grid's data directory): the core's
// job rows (core/supervisor-types.ts GridJobRow: where each unit runs, the
// highest epoch used, the recovery lines, the clusters lost) with each job's
// unit specs, the store and agent lease of every cluster that registered,
// and when each line was written — what a restarted grid coordinator hands
// back to its core, and what it needs to recover a job from a lost cluster's
// store. A DurableJson file, replaced whole and atomically: a line once
// acknowledged is never lost. Bounded by the core (lines per job, jobs).

export interface RecoveryLine {
  jobId: string;
  gridEpoch: bigint;
  clusterEpochs: Record<string, bigint>;
  committedUnixMs: number;
  /** unit → the cluster whose store holds its pages at this line. */
  unitClusters: Record<string, string>;
}

export interface ClusterRecord {
  storeDir: string;
  agentLeaseMs: number;
}

/** What a grid shell reads and writes of its catalog: this file, or etcd's keys (etcd-catalog.ts, docs/grid-ha.md). */
export interface GridCatalogStore {
  rows(): GridJobRow[];
  specs(): Map<string, StoredJobSpec>;
  clusters(): Map<string, ClusterRecord>;
  lineTime(jobId: string, epoch: bigint): number;
  save(rows: readonly GridJobRow[], specOf: (jobId: string) => StoredJobSpec | null, line?: { jobId: string; epoch: bigint; unixMs: number }): Promise<void>;
  saveCluster(clusterId: string, record: ClusterRecord): Promise<void>;
}

export interface CatalogFile {
  format: string;
  jobs: Record<string, { row: GridJobRow; spec: StoredJobSpec }>;
  clusters: Record<string, ClusterRecord>;
  /** `${jobId}@${epoch}` → when the line was written (wall clock). */
  lineTimes: Record<string, number>;
}

const FILE = 'catalog.json';
// 3: the core's rows (format 2 held the old coordinator's records: its jobs are not resumed, its clusters' stores are kept).
const FORMAT = 'gridckpt-catalog/3';

function parseCatalog(value: unknown): CatalogFile {
  const raw = value as Partial<CatalogFile> & { format?: string };
  if (raw.format === 'gridckpt-catalog/2') return { format: FORMAT, jobs: {}, clusters: { ...(raw.clusters ?? {}) }, lineTimes: {} };
  if (raw.format !== FORMAT || typeof raw.jobs !== 'object' || raw.jobs === null) throw new Error(`not a ${FORMAT} file`);
  const jobs: CatalogFile['jobs'] = {};
  // JSON holds a line's epoch as a decimal string.
  for (const [id, e] of Object.entries(raw.jobs)) jobs[id] = rowFromJson(id, e);
  return { format: FORMAT, jobs, clusters: { ...(raw.clusters ?? {}) }, lineTimes: { ...(raw.lineTimes ?? {}) } };
}

/** The catalog after a save of the core's rows (the file's and etcd's alike): each job's row with its spec, the lines' times. */
export function catalogAfterSave(s: CatalogFile, rows: readonly GridJobRow[], specOf: (jobId: string) => StoredJobSpec | null, line?: { jobId: string; epoch: bigint; unixMs: number }): CatalogFile {
  const jobs: CatalogFile['jobs'] = {};
  for (const row of rows) {
    const spec = specOf(row.jobId) ?? s.jobs[row.jobId]?.spec;
    if (spec) jobs[row.jobId] = { row, spec };
  }
  const lineTimes: Record<string, number> = {};
  for (const row of rows) for (const l of row.lines) {
    const key = `${row.jobId}@${l.epoch}`;
    const at = s.lineTimes[key] ?? (line && line.jobId === row.jobId && line.epoch === l.epoch ? line.unixMs : undefined);
    if (at !== undefined) lineTimes[key] = at;
  }
  if (line) lineTimes[`${line.jobId}@${line.epoch}`] ??= line.unixMs;
  return { ...s, jobs, lineTimes };
}

/** A job's row as JSON holds it (epochs as decimal strings) back to the core's. */
export function rowFromJson(id: string, e: { row?: GridJobRow; spec?: StoredJobSpec }): { row: GridJobRow; spec: StoredJobSpec } {
  if (e.row?.jobId !== id || e.spec?.jobId !== id || !Array.isArray(e.row.lines)) throw new Error(`catalog: bad row for job ${JSON.stringify(id)}`);
  return { spec: e.spec, row: { ...e.row, lines: e.row.lines.map((l: GridLine) => ({ ...l, epoch: BigInt(String(l.epoch)) })) } };
}

export class GridCatalog implements GridCatalogStore {
  private constructor(private readonly file: DurableJson<CatalogFile>) {}

  static async open(dir: string): Promise<GridCatalog> {
    return new GridCatalog(await DurableJson.open(dir, FILE, parseCatalog, () => ({ format: FORMAT, jobs: {}, clusters: {}, lineTimes: {} })));
  }

  rows(): GridJobRow[] {
    return Object.values(this.file.current.jobs).map((e) => structuredClone(e.row));
  }

  specs(): Map<string, StoredJobSpec> {
    return new Map(Object.values(this.file.current.jobs).map((e) => [e.spec.jobId, e.spec]));
  }

  clusters(): Map<string, ClusterRecord> {
    return new Map(Object.entries(this.file.current.clusters));
  }

  linesOf(jobId: string): RecoveryLine[] {
    const e = this.file.current.jobs[jobId];
    return (e?.row.lines ?? []).map((l) => lineOf(jobId, l, this.file.current.lineTimes[`${jobId}@${l.epoch}`] ?? 0));
  }

  lineTime(jobId: string, epoch: bigint): number {
    return this.file.current.lineTimes[`${jobId}@${epoch}`] ?? 0;
  }

  /** The core's rows, whole, with each job's spec; `line` stamps a new line's time. */
  save(rows: readonly GridJobRow[], specOf: (jobId: string) => StoredJobSpec | null, line?: { jobId: string; epoch: bigint; unixMs: number }): Promise<void> {
    return this.file.update((s) => catalogAfterSave(s, rows, specOf, line));
  }

  async saveCluster(clusterId: string, record: ClusterRecord): Promise<void> {
    const old = this.file.current.clusters[clusterId];
    if (old && old.storeDir === record.storeDir && old.agentLeaseMs === record.agentLeaseMs) return;
    await this.file.update((s) => ({ ...s, clusters: { ...s.clusters, [clusterId]: record } }));
  }
}

export function lineOf(jobId: string, l: GridLine, committedUnixMs: number): RecoveryLine {
  return {
    jobId, gridEpoch: l.epoch, committedUnixMs, unitClusters: { ...l.unitClusters },
    clusterEpochs: Object.fromEntries(Object.entries(l.clusterEpochs).map(([c, e]) => [c, BigInt(e)])),
  };
}
