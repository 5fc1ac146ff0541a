import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GridError } from '../common/errors.js';
import { ensureDirDurable, renameDurable, writeFileSynced, isErrno } from '../node/store/durable-fs.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import type { ClusterJob, ClusterJobState } from './cluster-job.js';

// The cluster coordinator's job table on disk (`jobs.json` in its data
// directory): what a restarted coordinator needs to resume its jobs — spec,
// placement, which node holds whose checkpoint parts, state. The committed
// epochs themselves are in the store (the manifest is the decision); this
// file only says where the job runs. Rewritten whole, fsynced, renamed into
// place, one write at a time, so a crash leaves the old table or the new.

export interface JobRow {
  spec: JobSpec;
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
    spec: job.spec,
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

export class JobTable {
  private queue: Promise<void> = Promise.resolve();

  private constructor(private readonly dir: string, private rows: Record<string, JobRow>) {}

  static async open(dir: string): Promise<JobTable> {
    await ensureDirDurable(dir);
    try {
      const raw = JSON.parse(await readFile(join(dir, FILE), 'utf8')) as { format?: string; jobs?: Record<string, JobRow> };
      if (raw.format !== FORMAT || typeof raw.jobs !== 'object' || raw.jobs === null) throw new Error(`not a ${FORMAT} file`);
      return new JobTable(dir, raw.jobs);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return new JobTable(dir, {});
      throw new GridError('data-loss', `cluster job table ${join(dir, FILE)} is unreadable: ${(err as Error).message}`);
    }
  }

  all(): JobRow[] {
    return Object.values(this.rows);
  }

  save(row: JobRow): Promise<void> {
    const run = this.queue.then(async () => {
      const next = { ...this.rows, [row.spec.jobId]: row };
      const tmp = join(this.dir, `${FILE}.tmp`);
      await writeFileSynced(tmp, Buffer.from(JSON.stringify({ format: FORMAT, jobs: next })));
      await renameDurable(tmp, join(this.dir, FILE));
      this.rows = next;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}
