import type { JobSpec } from './job-spec.js';
import { RequestGate } from './request-gate.js';
import type { Snapshot } from './memory/page-memory.js';
import type { EpochManifest, PartInfo } from '../store/index.js';

// What the agent's shell keeps per job beside the core: the things a pure
// core cannot hold (the spec's commands, the units' secrets, page bytes in
// staging, the request gate) and what the last steps measured. The job's
// lifecycle (state, epochs, leases, fencing) is the core's alone.

export interface StepTiming {
  freezeMs: number;
  snapshotMs: number;
  thawMs: number;
  freezeWindowMs: number;
  pagesSwappedIn: number;
}

export interface WrittenPart {
  part: PartInfo;
  containers: Array<{ name: string; pageCount: number }>;
  writeMs: number;
  /** A local checkpoint's manifest (it wrote the whole epoch). */
  manifest: EpochManifest | null;
}

export interface JobShell {
  spec: JobSpec;
  /** unitId → secret the unit proves its identity with. */
  tokens: Map<string, string>;
  gate: RequestGate;
  /** Staging memory kept warm between checkpoints (see warmStaging). */
  staging: Uint8Array | null;
  /** Snapshots staged, being written or written-not-confirmed, by epoch (their pages are marked changed again if dropped). */
  snapshots: Map<bigint, Snapshot>;
  /** The freeze started for this epoch (clock ms), until its thaw. */
  frozenAt: Map<bigint, number>;
  /** A freeze that failed, reported by the snapshot op that follows it. */
  freezeErrors: Map<bigint, unknown>;
  timing: Map<bigint, StepTiming>;
  written: Map<bigint, WrittenPart>;
  /** Resolved when the job settles (every unit exited, stopped or fenced). */
  exitWaiters: Array<() => void>;
}

export function newJobShell(spec: JobSpec, maxGatedRequests: number): JobShell {
  return {
    spec, tokens: new Map(), gate: new RequestGate(maxGatedRequests), staging: null,
    snapshots: new Map(), frozenAt: new Map(), freezeErrors: new Map(), timing: new Map(), written: new Map(), exitWaiters: [],
  };
}

/** Keeps per-epoch records bounded: only the newest few epochs matter to answers and events. */
export function trimEpochs<V>(m: Map<bigint, V>, keep = 4): void {
  // Called on every snapshot and write: one pass per epoch dropped (usually one), nothing allocated.
  while (m.size > keep) {
    let oldest: bigint | null = null;
    for (const e of m.keys()) if (oldest === null || e < oldest) oldest = e;
    m.delete(oldest!);
  }
}

/**
 * Sizes the job's staging before the freeze and touches every byte of it,
 * so the copy inside the window takes no page faults (on this VM a fresh GiB
 * faults for 3–5 s, a warm one copies in 0.1 s). It is kept for the next
 * checkpoint; headroom covers pages changed between now and the freeze (if
 * more change, the snapshot allocates, slower but correct).
 */
export function warmStaging(job: JobShell, needBytes: number, pageBytes: number): Uint8Array | undefined {
  if (needBytes === 0) return undefined;
  if (job.staging && job.staging.length >= needBytes) return job.staging;
  const bytes = needBytes + Math.ceil(needBytes / 4 / pageBytes) * pageBytes + 64 * pageBytes;
  job.staging = null; // drop the old one before allocating the new
  const staging = new Uint8Array(bytes);
  staging.fill(1);
  job.staging = staging;
  return staging;
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
