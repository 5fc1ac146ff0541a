import { failpoint } from '../common/failpoints.js';
import { DurableJson } from '../runtime/durable-json.js';
import type { StoredJobSpec } from '../store/index.js';
import type { ClusterJobState, JobRow } from './core/supervisor-types.js';

// The cluster coordinator's job table on disk (`jobs.json` in its data
// directory): the core's job rows (core/supervisor-types.ts JobRow) with each
// job's unit specs, which a restarted coordinator hands back to its core. The
// committed epochs themselves are in the store (the manifest is the
// decision); the table says where each job runs and under which start. A
// DurableJson file: replaced whole, atomically, one write at a time.

export interface TableEntry {
  row: JobRow;
  spec: StoredJobSpec;
  /** The job's retention (absent in tables written before it existed: the default). */
  retention?: { keepLast: number; keepForMs: number };
}

/** A row as JSON holds it (bigints as decimal strings). */
interface StoredRow extends Omit<JobRow, 'committed' | 'highestEpoch'> {
  committed: string[];
  highestEpoch?: string;
}

interface TableFile {
  format: string;
  jobs: Record<string, { row: StoredRow; spec: StoredJobSpec; retention?: { keepLast: number; keepForMs: number } }>;
  /** Deleted jobs: the highest epoch each used (decimal), so that a job under its id numbers above it (C3). */
  forgotten?: Record<string, string>;
}

const FILE = 'jobs.json';
// 2: the core's rows (format 1 held the old coordinator's records; such a table is started anew).
const FORMAT = 'gridckpt-cluster-jobs/2';
const STATES: readonly ClusterJobState[] = ['starting', 'running', 'recovering', 'completed', 'failed', 'fenced', 'stopped'];

function parseTable(value: unknown): TableFile {
  const raw = value as Partial<TableFile>;
  // A table of the old coordinator: its jobs are not resumed (a grid recovers its own; a local job is submitted again).
  if (raw.format === 'gridckpt-cluster-jobs/1') return { format: FORMAT, jobs: {} };
  if (raw.format !== FORMAT || typeof raw.jobs !== 'object' || raw.jobs === null) throw new Error(`not a ${FORMAT} file`);
  for (const [id, e] of Object.entries(raw.jobs)) {
    if (e.row?.jobId !== id || !STATES.includes(e.row.state) || !Array.isArray(e.row.committed) || e.spec?.jobId !== id) throw new Error(`job table: bad row for job ${JSON.stringify(id)}`);
  }
  const forgotten: Record<string, string> = {};
  for (const [id, e] of Object.entries(raw.forgotten ?? {})) {
    if (typeof e !== 'string' || !/^\d+$/.test(e)) throw new Error(`job table: bad highest epoch of deleted job ${JSON.stringify(id)}`);
    forgotten[id] = e;
  }
  return { format: FORMAT, jobs: raw.jobs, forgotten };
}

export class JobTable {
  private constructor(private readonly file: DurableJson<TableFile>) {}

  static async open(dir: string): Promise<JobTable> {
    return new JobTable(await DurableJson.open(dir, FILE, parseTable, () => ({ format: FORMAT, jobs: {} })));
  }

  all(): TableEntry[] {
    return Object.values(this.file.current.jobs).map((e) => ({ row: rowFromStored(e.row), spec: e.spec, ...(e.retention ? { retention: { ...e.retention } } : {}) }));
  }

  forgotten(): Map<string, bigint> {
    return new Map(Object.entries(this.file.current.forgotten ?? {}).map(([id, e]) => [id, BigInt(e)]));
  }

  /** A deleted job: its row goes, its highest epoch stays (bounded like the core's memory of it). */
  async forget(jobId: string, highestEpoch: bigint, keep: number): Promise<void> {
    failpoint('cluster.job-table-save');
    await this.file.update((t) => {
      const { [jobId]: _gone, ...jobs } = t.jobs;
      const rest = Object.entries(t.forgotten ?? {}).filter(([id]) => id !== jobId);
      const forgotten = Object.fromEntries([...rest, [jobId, String(highestEpoch)] as [string, string]].slice(-keep));
      return { ...t, jobs, forgotten };
    });
  }

  async save(e: TableEntry): Promise<void> {
    failpoint('cluster.job-table-save'); // tests: a data dir that takes no write
    const { highestEpoch, ...rest } = e.row;
    const row: StoredRow = { ...rest, committed: e.row.committed.map(String), ...(highestEpoch === undefined ? {} : { highestEpoch: String(highestEpoch) }) };
    await this.file.update((t) => ({ ...t, jobs: { ...t.jobs, [e.row.jobId]: { row, spec: e.spec, ...(e.retention ? { retention: e.retention } : {}) } } }));
  }
}

function rowFromStored(r: StoredRow): JobRow {
  const { highestEpoch, ...rest } = r;
  return { ...rest, committed: r.committed.map((x) => BigInt(x)), ...(highestEpoch === undefined ? {} : { highestEpoch: BigInt(highestEpoch) }) };
}
