import { GridError } from '../common/errors.js';
import { DurableJson } from '../runtime/durable-json.js';
import type { StoredJobSpec } from '../store/index.js';

// The grid catalog: every committed recovery line (job, grid epoch, each
// cluster's epoch, and which cluster's store holds each unit's pages), the
// grid's jobs (spec, where each unit runs, state) and the store of every
// cluster that ever registered — what a restarted grid coordinator needs to
// resume its jobs and to recover them from a lost cluster's store. It is a
// DurableJson file (replaced whole, atomically), so a line once acknowledged
// is never lost. Bounded: the newest maxLinesPerJob lines of each job are kept.

export interface RecoveryLine {
  jobId: string;
  gridEpoch: bigint;
  clusterEpochs: Record<string, bigint>;
  committedUnixMs: number;
  /** unit → the cluster whose store holds its pages at this line. */
  unitClusters: Record<string, string>;
}

export interface GridJobRecord {
  spec: StoredJobSpec;
  /** unit → cluster */
  clusters: Record<string, string>;
  state: string;
  recoveries: number;
  lastError: string;
  /** Clusters lost and not yet recovered from (a recovery in progress). */
  lost?: string[];
}

export interface ClusterRecord {
  storeDir: string;
  agentLeaseMs: number;
}

interface CatalogState {
  lines: RecoveryLine[];
  jobs: Record<string, GridJobRecord>;
  clusters: Record<string, ClusterRecord>;
}

const FILE = 'catalog.json';
const FORMAT = 'gridckpt-catalog/2';
const OLD_FORMAT = 'gridckpt-catalog/1';

interface CatalogFile extends CatalogState {
  format: string;
}

function parseCatalog(value: unknown): CatalogFile {
  const raw = value as { format?: string; lines?: Array<Record<string, unknown>>; jobs?: unknown; clusters?: unknown };
  if ((raw.format !== FORMAT && raw.format !== OLD_FORMAT) || !Array.isArray(raw.lines)) throw new Error(`not a ${FORMAT} file`);
  return {
    format: FORMAT,
    lines: raw.lines.map((l) => ({
      jobId: String(l['jobId']),
      gridEpoch: BigInt(String(l['gridEpoch'])),
      clusterEpochs: Object.fromEntries(Object.entries(l['clusterEpochs'] as Record<string, string>).map(([k, v]) => [k, BigInt(v)])),
      committedUnixMs: Number(l['committedUnixMs']),
      unitClusters: { ...((l['unitClusters'] as Record<string, string> | undefined) ?? {}) },
    })),
    jobs: (raw.jobs as Record<string, GridJobRecord> | undefined) ?? {},
    clusters: (raw.clusters as Record<string, ClusterRecord> | undefined) ?? {},
  };
}

export class GridCatalog {
  private constructor(private readonly file: DurableJson<CatalogFile>, private readonly maxLinesPerJob: number) {}

  static async open(dir: string, maxLinesPerJob = 64): Promise<GridCatalog> {
    const file = await DurableJson.open(dir, FILE, parseCatalog, () => ({ format: FORMAT, lines: [], jobs: {}, clusters: {} }));
    return new GridCatalog(file, maxLinesPerJob);
  }

  private get state(): CatalogState {
    return this.file.current;
  }

  linesOf(jobId: string): RecoveryLine[] {
    return this.state.lines.filter((l) => l.jobId === jobId);
  }

  latest(jobId: string): RecoveryLine | null {
    const ls = this.linesOf(jobId);
    return ls[ls.length - 1] ?? null;
  }

  jobs(): string[] {
    return [...new Set([...this.state.lines.map((l) => l.jobId), ...Object.keys(this.state.jobs)])];
  }

  jobRecords(): GridJobRecord[] {
    return Object.values(this.state.jobs);
  }

  cluster(clusterId: string): ClusterRecord | null {
    return this.state.clusters[clusterId] ?? null;
  }

  async append(line: RecoveryLine): Promise<void> {
    const previous = this.latest(line.jobId);
    if (previous && line.gridEpoch <= previous.gridEpoch) {
      throw new GridError('failed-precondition', `recovery line ${line.gridEpoch} of job ${line.jobId} is not above ${previous.gridEpoch}`);
    }
    await this.file.update((s) => {
      const next = [...s.lines, line];
      const mine = next.filter((l) => l.jobId === line.jobId);
      const drop = new Set(mine.slice(0, Math.max(0, mine.length - this.maxLinesPerJob)));
      return { ...s, lines: next.filter((l) => !drop.has(l)) };
    });
  }

  /** Drops a job's lines above this one: a rollback found them unrestorable and restored this one. */
  dropAbove(jobId: string, gridEpoch: bigint): Promise<void> {
    return this.file.update((s) => ({ ...s, lines: s.lines.filter((l) => l.jobId !== jobId || l.gridEpoch <= gridEpoch) }));
  }

  saveJob(record: GridJobRecord): Promise<void> {
    return this.file.update((s) => ({ ...s, jobs: { ...s.jobs, [record.spec.jobId]: record } }));
  }

  async saveCluster(clusterId: string, record: ClusterRecord): Promise<void> {
    const old = this.state.clusters[clusterId];
    if (old && old.storeDir === record.storeDir && old.agentLeaseMs === record.agentLeaseMs) return;
    await this.file.update((s) => ({ ...s, clusters: { ...s.clusters, [clusterId]: record } }));
  }
}
