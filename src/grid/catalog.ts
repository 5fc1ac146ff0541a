import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GridError } from '../common/errors.js';
import { ensureDirDurable, renameDurable, writeFileSynced, isErrno } from '../node/store/durable-fs.js';

// The grid catalog: every committed recovery line (job, grid epoch, each
// cluster's epoch). It is rewritten whole and put in place by an atomic
// rename after fsync, so a crash of the grid coordinator at any instant
// leaves either the old catalog or the new one — never a torn one — and a
// line once acknowledged is never lost. Bounded: the newest maxLinesPerJob
// lines of each job are kept (older epochs are garbage-collected anyway).

export interface RecoveryLine {
  jobId: string;
  gridEpoch: bigint;
  clusterEpochs: Record<string, bigint>;
  committedUnixMs: number;
}

const FILE = 'catalog.json';
const FORMAT = 'gridckpt-catalog/1';

export class GridCatalog {
  private constructor(private readonly dir: string, private lines: RecoveryLine[], private readonly maxLinesPerJob: number) {}

  static async open(dir: string, maxLinesPerJob = 64): Promise<GridCatalog> {
    await ensureDirDurable(dir);
    let lines: RecoveryLine[] = [];
    try {
      const raw = JSON.parse(await readFile(join(dir, FILE), 'utf8')) as { format?: string; lines?: Array<Record<string, unknown>> };
      if (raw.format !== FORMAT || !Array.isArray(raw.lines)) throw new Error(`not a ${FORMAT} file`);
      lines = raw.lines.map((l) => ({
        jobId: String(l['jobId']),
        gridEpoch: BigInt(String(l['gridEpoch'])),
        clusterEpochs: Object.fromEntries(Object.entries(l['clusterEpochs'] as Record<string, string>).map(([k, v]) => [k, BigInt(v)])),
        committedUnixMs: Number(l['committedUnixMs']),
      }));
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw new GridError('data-loss', `grid catalog ${join(dir, FILE)} is unreadable: ${(err as Error).message}`);
    }
    return new GridCatalog(dir, lines, maxLinesPerJob);
  }

  linesOf(jobId: string): RecoveryLine[] {
    return this.lines.filter((l) => l.jobId === jobId);
  }

  latest(jobId: string): RecoveryLine | null {
    const ls = this.linesOf(jobId);
    return ls[ls.length - 1] ?? null;
  }

  jobs(): string[] {
    return [...new Set(this.lines.map((l) => l.jobId))];
  }

  async append(line: RecoveryLine): Promise<void> {
    const previous = this.latest(line.jobId);
    if (previous && line.gridEpoch <= previous.gridEpoch) {
      throw new GridError('failed-precondition', `recovery line ${line.gridEpoch} of job ${line.jobId} is not above ${previous.gridEpoch}`);
    }
    const next = [...this.lines, line];
    const mine = next.filter((l) => l.jobId === line.jobId);
    const drop = new Set(mine.slice(0, Math.max(0, mine.length - this.maxLinesPerJob)));
    const kept = next.filter((l) => !drop.has(l));
    const body = JSON.stringify({ format: FORMAT, lines: kept }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    const tmp = join(this.dir, `${FILE}.tmp`);
    await writeFileSynced(tmp, Buffer.from(body));
    await renameDurable(tmp, join(this.dir, FILE));
    this.lines = kept;
  }
}
