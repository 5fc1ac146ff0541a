import { DurableJson } from '../runtime/durable-json.js';
import type { StoredJobSpec } from '../store/index.js';
import type { RestartPolicy } from '../protocol/job-spec.js';
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
  /** Deleted jobs' highest epochs (the core's G3). */
  forgotten(): Map<string, bigint>;
  /** The restart policies submits named (absent: the default). */
  policies(): Map<string, RestartPolicy>;
  save(rows: readonly GridJobRow[], specOf: (jobId: string) => StoredJobSpec | null, line?: { jobId: string; epoch: bigint; unixMs: number }, extra?: CatalogExtras): Promise<void>;
  saveCluster(clusterId: string, record: ClusterRecord): Promise<void>;
}

/** What a save writes beside the rows: deleted jobs' highest epochs (whole), each job's restart policy. */
export interface CatalogExtras {
  forgotten: Record<string, string>;
  policyOf: (jobId: string) => RestartPolicy | null;
}

export interface CatalogFile {
  format: string;
  /** restartPolicy: the one the submit named (absent: the default). */
  jobs: Record<string, { row: GridJobRow; spec: StoredJobSpec; restartPolicy?: RestartPolicy }>;
  clusters: Record<string, ClusterRecord>;
  /** `${jobId}@${epoch}` → when the line was written (wall clock). */
  lineTimes: Record<string, number>;
  /** Deleted jobs' highest epochs (decimal): a job under the id numbers above them (the core's G3). */
  forgotten?: Record<string, string>;
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
  return { format: FORMAT, jobs, clusters: { ...(raw.clusters ?? {}) }, lineTimes: { ...(raw.lineTimes ?? {}) }, forgotten: forgottenFromJson(raw.forgotten) };
}

/** The catalog after a save of the core's rows (the file's and etcd's alike): each job's row with its spec and policy, the lines' times. */
export function catalogAfterSave(s: CatalogFile, rows: readonly GridJobRow[], specOf: (jobId: string) => StoredJobSpec | null, line?: { jobId: string; epoch: bigint; unixMs: number }, extra?: CatalogExtras): CatalogFile {
  const jobs: CatalogFile['jobs'] = {};
  for (const row of rows) {
    const spec = specOf(row.jobId) ?? s.jobs[row.jobId]?.spec;
    const policy = extra ? extra.policyOf(row.jobId) : s.jobs[row.jobId]?.restartPolicy ?? null;
    if (spec) jobs[row.jobId] = { row, spec, ...(policy ? { restartPolicy: { onUnitFailure: policy.onUnitFailure, maxRestarts: policy.maxRestarts } } : {}) };
  }
  const lineTimes: Record<string, number> = {};
  for (const row of rows) for (const l of row.lines) {
    const key = `${row.jobId}@${l.epoch}`;
    const at = s.lineTimes[key] ?? (line && line.jobId === row.jobId && line.epoch === l.epoch ? line.unixMs : undefined);
    if (at !== undefined) lineTimes[key] = at;
  }
  if (line) lineTimes[`${line.jobId}@${line.epoch}`] ??= line.unixMs;
  return { ...s, jobs, lineTimes, forgotten: extra ? { ...extra.forgotten } : { ...(s.forgotten ?? {}) } };
}

/** Deleted jobs' highest epochs as JSON holds them (decimal strings), checked. */
export function forgottenFromJson(raw: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [id, e] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
    if (typeof e !== 'string' || !/^\d+$/.test(e)) throw new Error(`catalog: bad highest epoch of deleted job ${JSON.stringify(id)}`);
    out[id] = e;
  }
  return out;
}

/** A job's row as JSON holds it (epochs as decimal strings) back to the core's. */
export function rowFromJson(id: string, e: { row?: GridJobRow; spec?: StoredJobSpec; restartPolicy?: RestartPolicy }): CatalogFile['jobs'][string] {
  if (e.row?.jobId !== id || e.spec?.jobId !== id || !Array.isArray(e.row.lines)) throw new Error(`catalog: bad row for job ${JSON.stringify(id)}`);
  return {
    spec: e.spec, row: { ...e.row, lines: e.row.lines.map((l: GridLine) => ({ ...l, epoch: BigInt(String(l.epoch)) })) },
    ...(e.restartPolicy ? { restartPolicy: { onUnitFailure: e.restartPolicy.onUnitFailure, maxRestarts: e.restartPolicy.maxRestarts } } : {}),
  };
}

export class GridCatalog implements GridCatalogStore {
  private constructor(private readonly file: DurableJson<CatalogFile>) {}

  static async open(dir: string): Promise<GridCatalog> {
    return new GridCatalog(await DurableJson.open(dir, FILE, parseCatalog, () => ({ format: FORMAT, jobs: {}, clusters: {}, lineTimes: {} })));
  }

  rows(): GridJobRow[] {
    return Object.values(this.file.current.jobs).map((e) => structuredClone(e.row));
  }

  policies(): Map<string, RestartPolicy> {
    return new Map(Object.values(this.file.current.jobs).flatMap((e) => (e.restartPolicy ? [[e.spec.jobId, { ...e.restartPolicy }] as const] : [])));
  }

  specs(): Map<string, StoredJobSpec> {
    return new Map(Object.values(this.file.current.jobs).map((e) => [e.spec.jobId, e.spec]));
  }

  forgotten(): Map<string, bigint> {
    return new Map(Object.entries(this.file.current.forgotten ?? {}).map(([id, e]) => [id, BigInt(e)]));
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
  save(rows: readonly GridJobRow[], specOf: (jobId: string) => StoredJobSpec | null, line?: { jobId: string; epoch: bigint; unixMs: number }, extra?: CatalogExtras): Promise<void> {
    return this.file.update((s) => catalogAfterSave(s, rows, specOf, line, extra));
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
