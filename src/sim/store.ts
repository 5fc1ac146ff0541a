import type { JobRow, ManifestRecord } from '../cluster/core/supervisor-types.js';
import type { PartRef } from '../protocol/messages.js';
import type { GridJobRow } from '../grid/core/supervisor-types.js';
import type { SeededRng } from '../runtime/rng.js';
import type { UnitState } from './bank-model.js';
import type { SimProcess } from './world.js';

// Simulated disks: each cluster's shared checkpoint store (parts written by
// agents, manifests by the coordinator; it outlives any one member, as a
// shared store does) with the coordinator's job table, and the grid's catalog. A write becomes durable only
// after the disk's latency, if the writer is still alive then: a crash
// before that loses it (an unsynced write). A member can be made to fail
// its next writes with ENOSPC or EIO.

export interface StoredPart {
  units: Map<string, UnitState>;
  damaged: boolean;
}

export class SimStore {
  readonly parts = new Map<string, StoredPart>();
  readonly manifests = new Map<string, ManifestRecord>();
  /** The cluster coordinator's job table (on its own disk in a real cluster; kept here, beside its store). */
  readonly table = new Map<string, JobRow>();
  /** Deleted jobs' highest epochs, in the job table beside the rows. */
  readonly forgotten = new Map<string, bigint>();
  constructor(readonly id: string) {}

  static partKey(jobId: string, epoch: bigint, writer: string): string { return `${jobId}/${epoch}/${writer}`; }
  static manifestKey(jobId: string, epoch: bigint): string { return `${jobId}/${epoch}`; }

  /** The newest committed epoch of a job, if any. */
  newest(jobId: string): ManifestRecord | null {
    let best: ManifestRecord | null = null;
    for (const m of this.manifests.values()) if (m.jobId === jobId && (best === null || m.epoch > best.epoch)) best = m;
    return best;
  }

  /**
   * A unit's state as of `epoch`: the newest epoch of the chain that holds
   * it (incremental epochs hold only what changed). Verifies what it reads.
   */
  load(jobId: string, epoch: bigint, unit: string): { state: UnitState } | { error: string } {
    let at: bigint | null = epoch;
    while (at !== null) {
      const m = this.manifests.get(SimStore.manifestKey(jobId, at));
      if (!m) return { error: `epoch ${at} of job ${jobId} has no manifest in store ${this.id}` };
      for (const p of m.parts) {
        const part = this.parts.get(SimStore.partKey(jobId, at, p.writer));
        if (!part && !hasFiles(p)) continue;
        if (!part) return { error: `part ${p.writer} of epoch ${at} is missing from store ${this.id}` };
        const s = part.units.get(unit);
        if (s === undefined) continue;
        if (part.damaged) return { error: `part ${p.writer} of epoch ${at} fails its checksum in store ${this.id}` };
        return { state: s };
      }
      at = m.full ? null : m.parentEpoch;
    }
    return { error: `unit ${unit} is in no epoch of the chain of ${epoch} in store ${this.id}` };
  }
}

/**
 * A part of no pages has nothing on disk to find or to miss, as in the real store (epoch-writer.ts invariant 5,
 * part-reader.ts hasFiles): only what its writer said it holds is checked, never a file for it.
 */
export function hasFiles(p: PartRef): boolean {
  return p.pages > 0;
}

export interface DiskFaults {
  /** The next writes of a member fail with this error. */
  failNext: Map<string, { error: string; count: number }>;
  /** A member to crash right after it issues its next write (so the write is lost unsynced). */
  crashAtNextWrite: Map<string, () => void>;
  lostWrites: number;
  failedWrites: number;
}

/** A write that becomes durable after latency if `proc` is still the same incarnation then. */
export function diskWrite(proc: SimProcess, rng: SeededRng, faults: DiskFaults, apply: () => void, done: (error: string | null) => void): void {
  const inc = proc.incarnation;
  const crash = faults.crashAtNextWrite.get(proc.id);
  if (crash) {
    faults.crashAtNextWrite.delete(proc.id);
    proc.world.after(0, crash);
  }
  proc.world.after(1 + rng.int(4), () => {
    if (!proc.alive || proc.incarnation !== inc) {
      faults.lostWrites += 1;
      return;
    }
    const f = faults.failNext.get(proc.id);
    if (f && f.count > 0) {
      f.count -= 1;
      faults.failedWrites += 1;
      proc.deliver(0, () => done(f.error));
      return;
    }
    apply();
    proc.deliver(0, () => done(null));
  });
}

export interface GridDisk {
  catalog: GridJobRow[];
  /** Deleted jobs' highest epochs, in the catalog beside the rows. */
  forgotten: Record<string, string>;
}
