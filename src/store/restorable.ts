// Finds the newest epoch of a job's history that restores whole (ARCHITECTURE
// §3 invariant 6): the walk-back plan (walk-back.ts) over the manifests in the
// store, then every page of each candidate's chain verified, newest first.
// A coordinator uses it before a coordinated restore so that every node loads
// the same epoch (a cut is consistent only if every part is of one epoch).

import { GridError } from '../common/errors.js';
import { listEpochDirs, lookupManifest } from './epoch-catalog.js';
import { verifyEpoch } from './epoch-reader.js';
import type { EpochManifest } from './manifest.js';
import { planWalkBack, type ManifestState, type SkippedEpoch, type WalkStep } from './walk-back.js';

/** Verification errors quoted in a skip reason; verifyEpoch says how many there were. */
const MAX_QUOTED_ERRORS = 3;

export interface Restorable {
  /** Null when no named epoch restores. */
  manifest: EpochManifest | null;
  /** Newer epochs passed over, newest first, and why. */
  skipped: SkippedEpoch[];
}

export interface RestorableOptions {
  /** At most this many candidates are verified (each reads its whole chain). */
  maxCandidates: number;
  /** Epochs known bad already (a restore that failed on them), with the reason. */
  bad?: ReadonlyMap<bigint, string>;
}

/** The walk-back plan over what the job's epoch directories hold, and the committed manifests by epoch. */
export async function planStoreWalk(storeDir: string, jobId: string, named: Iterable<bigint>): Promise<{ steps: WalkStep[]; found: Map<bigint, EpochManifest> }> {
  const manifests = new Map<bigint, ManifestState>();
  const found = new Map<bigint, EpochManifest>();
  for (const epoch of await listEpochDirs(storeDir, jobId)) {
    const m = await lookupManifest(storeDir, jobId, epoch);
    if (m.kind === 'committed') {
      manifests.set(epoch, { kind: 'committed', parentEpoch: m.manifest.parentEpoch });
      found.set(epoch, m.manifest);
    } else {
      manifests.set(epoch, m.kind === 'missing' ? m : { kind: 'invalid', reason: m.error.message });
    }
  }
  return { steps: planWalkBack(named, manifests), found };
}

/** The newest of `named` (and the parents their manifests name) whose whole chain verifies. */
export async function newestRestorable(storeDir: string, jobId: string, named: Iterable<bigint>, opts: RestorableOptions): Promise<Restorable> {
  const { steps, found } = await planStoreWalk(storeDir, jobId, named);
  const skipped: SkippedEpoch[] = [];
  let tried = 0;
  for (const step of steps) {
    if (step.kind === 'skip') {
      skipped.push(step.skipped);
      continue;
    }
    const known = opts.bad?.get(step.epoch);
    if (known !== undefined) {
      skipped.push({ epoch: step.epoch, reason: known });
      continue;
    }
    if (tried >= opts.maxCandidates) {
      skipped.push({ epoch: step.epoch, reason: `not tried: ${opts.maxCandidates} newer epochs failed to verify first` });
      break;
    }
    tried += 1;
    const v = await verifyEpoch(storeDir, jobId, step.epoch).catch((err: unknown) => {
      if (err instanceof GridError) return { ok: false, errors: [err.message] };
      throw err;
    });
    if (v.ok) return { manifest: found.get(step.epoch)!, skipped };
    skipped.push({ epoch: step.epoch, reason: quote(v.errors) });
  }
  return { manifest: null, skipped };
}

/** Why this exact epoch does not restore (its manifest, or any page of its chain), or null when it does. */
export async function whyNotRestorable(storeDir: string, jobId: string, epoch: bigint): Promise<string | null> {
  const m = await lookupManifest(storeDir, jobId, epoch);
  if (m.kind === 'missing') return `manifest missing: ${m.reason}`;
  if (m.kind === 'invalid') return `manifest invalid: ${m.error.message}`;
  const v = await verifyEpoch(storeDir, jobId, epoch).catch((err: unknown) => {
    if (err instanceof GridError) return { ok: false, errors: [err.message] };
    throw err;
  });
  return v.ok ? null : quote(v.errors);
}

function quote(errors: readonly string[]): string {
  const more = errors.length > MAX_QUOTED_ERRORS ? ` (and ${errors.length - MAX_QUOTED_ERRORS} more)` : '';
  return `${errors.slice(0, MAX_QUOTED_ERRORS).join('; ')}${more}`;
}

export function describeSkipped(skipped: readonly SkippedEpoch[]): string {
  return skipped.map((s) => `epoch ${s.epoch}: ${s.reason}`).join('; ');
}
