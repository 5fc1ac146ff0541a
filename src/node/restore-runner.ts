import { performance } from 'node:perf_hooks';
import { GridError } from '../common/errors.js';
import type { AgentDeps, JobView } from './agent.js';
import { jobSpecFromManifest, type JobSpec } from './job-spec.js';
import { listCommitted, loadEpoch, epochChain, type EpochManifest } from '../store/index.js';

// Restore (invariant 6): load the chosen epoch's chain into page memory,
// every page verified before any is used. Asked for "latest", it walks back
// from the newest committed epoch and says which newer ones it passed over.

export interface SkippedEpoch {
  epoch: bigint;
  reason: string;
}

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
}

export interface RestoreSource {
  storeDir: string;
  epoch: bigint;
  parts: ReadonlySet<string>;
}

export async function runRestore(deps: AgentDeps, jobId: string, epoch: bigint | null, scope: RestoreScope = {}): Promise<RestoreResult> {
  if (scope.sources) return restoreFromSources(deps, jobId, scope.sources, scope.spec);
  const { config, memory, log, metrics } = deps;
  const t0 = performance.now();
  const committed = await listCommitted(config.storeDir, jobId);
  if (committed.length === 0) {
    throw new GridError('not-found', `job ${jobId} has no committed epoch in ${config.storeDir}`);
  }
  const highestEpoch = committed[committed.length - 1]!.epoch;
  const candidates = epoch === null ? [...committed].reverse() : committed.filter((m) => m.epoch === epoch);
  if (candidates.length === 0) {
    throw new GridError('not-found', `job ${jobId} has no committed epoch ${epoch} (newest is ${highestEpoch})`);
  }
  const skipped: SkippedEpoch[] = [];
  for (const manifest of candidates) {
    try {
      const spec = scope.spec ?? jobSpecFromManifest(manifest.job, config.limits, config.defaultFullEvery);
      const chain = await epochChain(config.storeDir, jobId, manifest.epoch);
      if (memory.jobs().includes(jobId)) memory.dropJob(jobId);
      const sizes = new Map(manifest.containers.map((c) => [c.name, c.pageCount]));
      if (!scope.parts) for (const c of manifest.containers) memory.createContainer(jobId, c.name, c.pageCount);
      const loaded = await loadEpoch(config.storeDir, jobId, manifest.epoch, (container, page, data) => {
        if (!memory.hasContainer(jobId, container)) memory.createContainer(jobId, container, sizes.get(container)!);
        memory.loadPage(jobId, container, page, data);
      }, scope.parts ? { parts: scope.parts } : {});
      metrics.restored(performance.now() - t0, skipped.length > 0);
      log.info(
        { jobId, epoch: String(manifest.epoch), pages: loaded.pagesLoaded, skipped: skipped.map((s) => String(s.epoch)) },
        skipped.length > 0 ? 'restored an older epoch after newer ones failed to verify' : 'restored',
      );
      return { manifest, spec, chainLength: chain.length, highestEpoch, skipped, pagesLoaded: loaded.pagesLoaded };
    } catch (err) {
      if (memory.jobs().includes(jobId)) memory.dropJob(jobId);
      const reason = err instanceof Error ? err.message : String(err);
      if (epoch !== null) {
        if (err instanceof GridError) throw err;
        throw new GridError('data-loss', reason);
      }
      log.warn({ jobId, epoch: String(manifest.epoch), reason }, 'epoch not restorable, trying an older one');
      skipped.push({ epoch: manifest.epoch, reason });
    }
  }
  throw new GridError('data-loss', `job ${jobId}: no committed epoch is restorable: ${skipped.map((s) => `epoch ${s.epoch}: ${s.reason}`).join('; ')}`);
}

async function restoreFromSources(deps: AgentDeps, jobId: string, sources: RestoreSource[], spec: JobSpec | undefined): Promise<RestoreResult> {
  const { config, memory, log, metrics } = deps;
  const t0 = performance.now();
  if (!spec) throw new GridError('invalid-argument', `restoring job ${jobId} from several stores needs the units to run (job)`);
  if (sources.length === 0) throw new GridError('invalid-argument', `restoring job ${jobId}: no source given`);
  const found: Array<{ source: RestoreSource; manifest: EpochManifest; chainLength: number; highest: bigint }> = [];
  for (const source of sources) {
    const committed = await listCommitted(source.storeDir, jobId);
    const manifest = committed.find((m) => m.epoch === source.epoch);
    if (!manifest) {
      throw new GridError('not-found', `job ${jobId} has no committed epoch ${source.epoch} in ${source.storeDir}`);
    }
    const chain = await epochChain(source.storeDir, jobId, manifest.epoch);
    found.push({ source, manifest, chainLength: chain.length, highest: committed[committed.length - 1]!.epoch });
  }
  if (memory.jobs().includes(jobId)) memory.dropJob(jobId);
  let pagesLoaded = 0;
  try {
    for (const { source, manifest } of found) {
      const sizes = new Map(manifest.containers.map((c) => [c.name, c.pageCount]));
      const loaded = await loadEpoch(source.storeDir, jobId, manifest.epoch, (container, page, data) => {
        if (!memory.hasContainer(jobId, container)) memory.createContainer(jobId, container, sizes.get(container)!);
        memory.loadPage(jobId, container, page, data);
      }, { parts: source.parts });
      pagesLoaded += loaded.pagesLoaded;
    }
  } catch (err) {
    if (memory.jobs().includes(jobId)) memory.dropJob(jobId);
    if (err instanceof GridError) throw err;
    throw new GridError('data-loss', err instanceof Error ? err.message : String(err));
  }
  metrics.restored(performance.now() - t0, false);
  log.info({ jobId, sources: found.map((f) => ({ store: f.source.storeDir, epoch: String(f.manifest.epoch), parts: [...f.source.parts] })), pages: pagesLoaded }, 'restored from several stores');
  // The agent's own store decides what the next incremental epoch builds on.
  const own = found.find((f) => f.source.storeDir === config.storeDir) ?? found[0]!;
  const highestEpoch = found.reduce((h, f) => (f.highest > h ? f.highest : h), 0n);
  return { manifest: own.manifest, spec, chainLength: own.chainLength, highestEpoch, skipped: [], pagesLoaded };
}
