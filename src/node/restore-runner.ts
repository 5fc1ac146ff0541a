import { GridError, type Damaged } from '../common/errors.js';
import type { AgentDeps, JobView } from './agent.js';
import { jobSpecFromManifest, type JobSpec } from './job-spec.js';
import { listCommitted, loadInto, epochChain, type EpochManifest, type LoadResult } from '../store/index.js';
import type { PageMemory } from './memory/page-memory.js';
import { pageMemoryTarget } from './restore-target.js';
import { planStoreWalk } from '../store/restorable.js';
import type { SkippedEpoch } from '../store/walk-back.js';

// Restore (invariant 6): load the chosen epoch's chain into page memory,
// every page verified before it is installed; a restore that fails drops
// whatever it had installed, so a job never runs on part of an image. Asked
// for "latest", it walks back from the newest committed epoch and says which
// newer ones it passed over.

export type { SkippedEpoch } from '../store/walk-back.js';

export interface RestoreResult {
  manifest: EpochManifest;
  spec: JobSpec;
  chainLength: number;
  highestEpoch: bigint;
  skipped: SkippedEpoch[];
  pagesLoaded: number;
  job?: JobView;
}

export interface RestoreScope {
  /** Only these nodes' parts; containers are then created as their pages arrive. */
  parts?: ReadonlySet<string>;
  /** The units to run here instead of the manifest's job. */
  spec?: JobSpec;
  /**
   * Pages from several stores (units adopted from a lost cluster): each
   * source's parts as of its epoch. Epochs are exact (no walking back: the
   * coordinator chose them as one consistent line); needs spec.
   */
  sources?: RestoreSource[];
  /** Epochs this agent knows were committed (its last one): a missing manifest of one is named, not passed over. */
  known?: bigint[];
}

export interface RestoreSource {
  storeDir: string;
  epoch: bigint;
  parts: ReadonlySet<string>;
}

export async function runRestore(deps: AgentDeps, jobId: string, epoch: bigint | null, scope: RestoreScope = {}): Promise<RestoreResult> {
  if (scope.sources) return restoreFromSources(deps, jobId, scope.sources, scope.spec);
  const { config, memory, log, metrics } = deps;
  const { clock } = deps.runtime;
  const t0 = clock.nowMs();
  const committed = await listCommitted(config.storeDir, jobId);
  if (committed.length === 0) {
    throw new GridError('not-found', `job ${jobId} has no committed epoch in ${config.storeDir}`);
  }
  const highestEpoch = committed[committed.length - 1]!.epoch;
  const skipped: SkippedEpoch[] = [];
  const candidates = epoch === null ? await walkCandidates(config.storeDir, jobId, committed, scope.known ?? [], skipped) : committed.filter((m) => m.epoch === epoch);
  if (candidates.length === 0) {
    throw new GridError('not-found', `job ${jobId} has no committed epoch ${epoch} (newest is ${highestEpoch})`);
  }
  for (const manifest of candidates) {
    try {
      const spec = scope.spec ?? jobSpecFromManifest(manifest.layout.spec, config.limits, config.defaultFullEvery);
      const chain = await epochChain(config.storeDir, jobId, manifest.epoch);
      if (memory.hasJob(jobId)) memory.dropJob(jobId);
      if (!scope.parts) for (const c of manifest.containers) memory.createContainer(jobId, c.name, c.pageCount);
      const loaded = await loadJobPages(memory, config.storeDir, jobId, manifest, scope.parts);
      metrics.restored(clock.nowMs() - t0, skipped.length > 0);
      log.info(
        { jobId, epoch: String(manifest.epoch), pages: loaded.pagesLoaded, skipped: skipped.map((s) => String(s.epoch)) },
        skipped.length > 0 ? 'restored an older epoch after newer ones failed to verify' : 'restored',
      );
      return { manifest, spec, chainLength: chain.length, highestEpoch, skipped, pagesLoaded: loaded.pagesLoaded };
    } catch (err) {
      if (memory.hasJob(jobId)) memory.dropJob(jobId);
      const reason = err instanceof Error ? err.message : String(err);
      if (epoch !== null) {
        if (err instanceof GridError) throw err;
        throw new GridError('data-loss', reason, { where: config.storeDir, epoch: manifest.epoch });
      }
      log.warn({ jobId, epoch: String(manifest.epoch), reason }, 'epoch not restorable, trying an older one');
      skipped.push({ epoch: manifest.epoch, reason });
    }
  }
  skipped.sort((a, b) => (a.epoch > b.epoch ? -1 : a.epoch < b.epoch ? 1 : 0));
  throw new GridError('data-loss', `job ${jobId}: no committed epoch is restorable: ${skipped.map((s) => `epoch ${s.epoch}: ${s.reason}`).join('; ')}`);
}

/**
 * Committed epochs newest first; an epoch this agent knows it committed, or
 * that a manifest names as its parent, whose manifest is gone or unreadable is
 * reported skipped (walk-back.ts) instead of passed over in silence.
 */
async function walkCandidates(storeDir: string, jobId: string, committed: EpochManifest[], known: readonly bigint[], skipped: SkippedEpoch[]): Promise<EpochManifest[]> {
  const { steps, found } = await planStoreWalk(storeDir, jobId, [...committed.map((m) => m.epoch), ...known]);
  const out: EpochManifest[] = [];
  for (const step of steps) {
    if (step.kind === 'skip') skipped.push(step.skipped);
    else out.push(found.get(step.epoch)!);
  }
  return out;
}

async function restoreFromSources(deps: AgentDeps, jobId: string, sources: RestoreSource[], spec: JobSpec | undefined): Promise<RestoreResult> {
  const { config, memory, log, metrics } = deps;
  const { clock } = deps.runtime;
  const t0 = clock.nowMs();
  if (!spec) throw new GridError('invalid-argument', `restoring job ${jobId} from several stores needs the units to run (job)`);
  if (sources.length === 0) throw new GridError('invalid-argument', `restoring job ${jobId}: no source given`);
  const found: Array<{ source: RestoreSource; manifest: EpochManifest; chainLength: number; highest: bigint }> = [];
  for (const source of sources) {
    const committed = await listCommitted(source.storeDir, jobId);
    const manifest = committed.find((m) => m.epoch === source.epoch);
    if (!manifest) {
      throw new GridError('not-found', `job ${jobId} has no committed epoch ${source.epoch} in ${source.storeDir}`, { where: source.storeDir, epoch: source.epoch });
    }
    // A chain that does not resolve (a parent gone) is damage in this source, named as such.
    const chain = await epochChain(source.storeDir, jobId, manifest.epoch).catch((err: unknown) => {
      throw new GridError('data-loss', err instanceof Error ? err.message : String(err), { where: source.storeDir, epoch: manifest.epoch });
    });
    found.push({ source, manifest, chainLength: chain.length, highest: committed[committed.length - 1]!.epoch });
  }
  if (memory.hasJob(jobId)) memory.dropJob(jobId);
  let pagesLoaded = 0;
  let loading: Damaged | null = null;
  try {
    for (const { source, manifest } of found) {
      loading = { where: source.storeDir, epoch: manifest.epoch };
      const loaded = await loadJobPages(memory, source.storeDir, jobId, manifest, source.parts);
      pagesLoaded += loaded.pagesLoaded;
    }
  } catch (err) {
    if (memory.hasJob(jobId)) memory.dropJob(jobId);
    if (err instanceof GridError) throw err;
    throw new GridError('data-loss', err instanceof Error ? err.message : String(err), loading);
  }
  metrics.restored(clock.nowMs() - t0, false);
  log.info({ jobId, sources: found.map((f) => ({ store: f.source.storeDir, epoch: String(f.manifest.epoch), parts: [...f.source.parts] })), pages: pagesLoaded }, 'restored from several stores');
  // The agent's own store decides what the next incremental epoch builds on.
  const own = found.find((f) => f.source.storeDir === config.storeDir) ?? found[0]!;
  const highestEpoch = found.reduce((h, f) => (f.highest > h ? f.highest : h), 0n);
  return { manifest: own.manifest, spec, chainLength: own.chainLength, highestEpoch, skipped: [], pagesLoaded };
}

/**
 * Loads an epoch's pages (those of `parts`' writers, or all) into the job's
 * page memory, read straight into its frames; containers the manifest lists
 * are created as needed. On failure the caller drops the job.
 */
export async function loadJobPages(memory: PageMemory, storeDir: string, jobId: string, manifest: EpochManifest, parts?: ReadonlySet<string>): Promise<LoadResult> {
  const sizes = new Map(manifest.containers.map((c) => [c.name, c.pageCount]));
  return loadInto(storeDir, jobId, manifest.epoch, pageMemoryTarget(memory, jobId, sizes), parts ? { parts } : {});
}
