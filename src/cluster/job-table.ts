import { DurableJson } from '../runtime/durable-json.js';
import { storedSpecOf, type StoredJobSpec } from '../store/index.js';
import type { ClusterJob, ClusterJobState } from './cluster-job.js';

// The cluster coordinator's job table on disk (`jobs.json` in its data
// directory): what a restarted coordinator needs to resume its jobs — spec,
// placement, which node holds whose checkpoint parts, state. The committed
// epochs themselves are in the store (the manifest is the decision); this
// file only says where the job runs. A DurableJson file: replaced whole,
// atomically, one write at a time.

export interface JobRow {
  spec: StoredJobSpec;
  state: ClusterJobState;
  gridManaged: boolean;
  placement: Record<string, string>;
  partOwners: Record<string, string>;
  lastEpoch: string | null;
  roundsSinceFull: number;
  recoveries: number;
  lastError: string;
  needsFull: boolean;
  adopted: Array<{ fromCluster: string; storeDir: string; epoch: string; holders: Record<string, string> }>;
}

const FILE = 'jobs.json';
const FORMAT = 'gridckpt-cluster-jobs/1';

export function rowOf(job: ClusterJob): JobRow {
  return {
    spec: storedSpecOf(job.spec),
    state: job.state,
    gridManaged: job.gridManaged,
    placement: Object.fromEntries(job.placement),
    partOwners: Object.fromEntries(job.partOwners),
    lastEpoch: job.lastEpoch === null ? null : String(job.lastEpoch),
    roundsSinceFull: job.roundsSinceFull,
    recoveries: job.recoveries,
    lastError: job.lastError,
    needsFull: job.needsFull,
    adopted: job.adopted.map((a) => ({ fromCluster: a.fromCluster, storeDir: a.storeDir, epoch: String(a.epoch), holders: Object.fromEntries(a.holders) })),
  };
}

interface TableFile {
  format: string;
  jobs: Record<string, JobRow>;
}

function parseTable(value: unknown): TableFile {
  const raw = value as Partial<TableFile>;
  if (raw.format !== FORMAT || typeof raw.jobs !== 'object' || raw.jobs === null) throw new Error(`not a ${FORMAT} file`);
  return { format: FORMAT, jobs: raw.jobs };
}

export class JobTable {
  private constructor(private readonly file: DurableJson<TableFile>) {}

  static async open(dir: string): Promise<JobTable> {
    return new JobTable(await DurableJson.open(dir, FILE, parseTable, () => ({ format: FORMAT, jobs: {} })));
  }

  all(): JobRow[] {
    return Object.values(this.file.current.jobs);
  }

  save(row: JobRow): Promise<void> {
    return this.file.update((t) => ({ ...t, jobs: { ...t.jobs, [row.spec.jobId]: row } }));
  }
}
