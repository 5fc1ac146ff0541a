import type { Command } from 'commander';
import { createLogger } from '../common/log.js';
import { EpochCollector } from '../cluster/epoch-collector.js';
import { validateRetention } from '../cluster/core/retention.js';
import { listCommitted, listJobs, removeIncomplete } from '../store/index.js';
import { parseIntFlag } from './output.js';

// `gridckpt gc`: garbage collection of a store while its cluster coordinator
// is stopped (a running coordinator collects on its own after each commit):
// the same retention core and crash-safe retirement as the coordinator's
// (docs/store-lifecycle.md), then the leftovers of interrupted removals and
// retirements below each job's newest committed epoch. Only for jobs the
// cluster runs on its own: a grid job's epochs may be named by the grid's
// recovery lines, which this command cannot see.

export interface GcOptions { storeDir: string; jobs: string[]; keepLast: number; keepForMs: number }

export async function runGc(o: GcOptions, print: (line: string) => void): Promise<void> {
  const log = createLogger('gc', process.env['GRIDCKPT_LOG_LEVEL'] ?? 'warn');
  const jobs = o.jobs.length > 0 ? o.jobs : await listJobs(o.storeDir);
  const collector = new EpochCollector(o.storeDir, () => Date.now(), log, { retired: () => undefined, failed: () => undefined }, Math.max(1, jobs.length));
  for (const jobId of jobs) {
    // First what interrupted retirements and removals left (they are below the newest committed epoch).
    const newest = (await listCommitted(o.storeDir, jobId)).at(-1)?.epoch;
    if (newest !== undefined) await removeIncomplete(o.storeDir, jobId, { below: newest });
    collector.collectStored(jobId, validateRetention({ keepLast: o.keepLast, keepForMs: o.keepForMs }, jobId));
  }
  await collector.idle();
  for (const s of collector.core.status()) {
    print(JSON.stringify({ jobId: s.jobId, epochs: s.epochs, retired: s.retired, ...(s.lastError ? { error: s.lastError } : {}) }));
  }
}

export function addGcCommand(program: Command): void {
  program.command('gc').description('garbage-collect a store offline (its cluster coordinator stopped): keep the newest K committed epochs of each job and their chains')
    .requiredOption('--store-dir <dir>', 'the store')
    .option('--job <id...>', 'only these jobs (default: every job in the store)')
    .option('--keep-last <n>', 'committed epochs to keep restorable per job', '3')
    .option('--keep-for-ms <ms>', 'also keep epochs committed less than this long ago', '0')
    .action(async (opts: { storeDir: string; job?: string[]; keepLast: string; keepForMs: string }) => {
      await runGc({
        storeDir: opts.storeDir, jobs: opts.job ?? [],
        keepLast: parseIntFlag('keep-last', opts.keepLast, 1, 10_000), keepForMs: parseIntFlag('keep-for-ms', opts.keepForMs, 0, 366 * 24 * 3600 * 1000),
      }, (line) => console.log(line));
    });
}
