import { invalidArgument } from '../../common/errors.js';
import { GRID_KEEP_LINES } from '../../protocol/core/grid-lines.js';

// Retention and garbage collection of a cluster store's committed epochs, as
// a pure core: commits, the grid's restores and finished deletions in, the
// epochs to retire out (ARCHITECTURE §5: keep the last K committed epochs
// restorable, delete what no retained epoch references). The shell
// (src/cluster/epoch-collector.ts) performs each retirement with the store's
// crash-safe protocol (src/store/epoch-retire.ts) and feeds the result back.
//
// Intuition: per job, some epochs are *roots* — the newest committed one, the
// newest K *counted* ones and, for a local job with an age rule, those younger
// than it. Every epoch on a root's chain (back to its full epoch) is kept.
// Anything else may go, one at a time per job, newest first: an epoch goes
// before its parent, so every epoch still committed has its whole chain
// (a reader never finds a committed epoch that does not restore).
//
// What the grid may still restore. A grid-managed job's epochs are named by
// the grid's recovery lines, which this cluster cannot see. It learns them
// from the grid's PREPAREs: the grid writes a line only after every cluster
// committed its epoch, and names its newest line as the parent of its next
// round, so an accepted PREPARE whose parent is P says "P is a line"
// (gridLine). The grid keeps the last GRID_KEEP_LINES lines, appends them in
// epoch order, and drops newer ones only when it walks back, which always
// comes here as a restore at an older epoch r (gridRestored: the epochs above
// r are no longer lines). An epoch of a grid job is *counted* when this
// incarnation saw a PREPARE confirm it as a line and no restore has passed
// over it since. If GRID_KEEP_LINES counted epochs lie above epoch e, the grid
// holds that many lines newer than e's, so e's line (if e was one) has been
// dropped. Epochs not (yet) confirmed — a commit whose line is still being
// written, whose line never landed, or found in the store at start (a previous
// incarnation may have seen them passed over) — go only once enough counted
// epochs lie above them; every epoch at or above the newest confirmed line is
// kept. A local job has no grid: all its committed epochs count.
//
// Compaction: chains stay short because rounds make every fullEvery-th epoch
// full (local jobs), and a grid job's epoch is made full here in the cluster
// once its chain would exceed maxChainEpochs (supervisor-grid.ts); so the
// store holds at most K + chain bound - 1 epochs of a job in steady state.
//
// Invariants (checkInvariants):
//   R1. The newest committed epoch of a job is never retired.
//   R2. No epoch on the chain of a root is retired.
//   R3. An epoch is retired only with at least `keep` counted epochs above it
//       (keep = K, or max(K, GRID_KEEP_LINES) for a grid-managed job).
//   R4. At most one retirement in flight per job; jobs ≤ maxJobs.
//   R5. Retirements go newest first among the epochs that may go: no epoch
//       still committed loses a parent (a restore of any listed epoch works).

export interface RetentionPolicy {
  /** Keep the newest keepLast committed epochs restorable (≥ 1). */
  keepLast: number;
  /** Local jobs: also keep every epoch committed less than this long ago (0: no age rule). */
  keepForMs: number;
}

/** A grid job's chain bound unless configured (local jobs: their fullEvery). */
export const DEFAULT_MAX_CHAIN_EPOCHS = 8;
export const DEFAULT_RETENTION: RetentionPolicy = { keepLast: 3, keepForMs: 0 };
export const MAX_KEEP_LAST = 10_000;
export const MAX_KEEP_FOR_MS = 366 * 24 * 3600 * 1000;

/** Checks a policy from a job spec; errors name the field. */
export function validateRetention(p: { keepLast: number; keepForMs: number }, jobId: string): RetentionPolicy {
  if (!Number.isSafeInteger(p.keepLast) || p.keepLast < 1 || p.keepLast > MAX_KEEP_LAST) {
    throw invalidArgument(`job ${jobId}: retention.keepLast ${String(p.keepLast)} must be an integer from 1 to ${MAX_KEEP_LAST}`);
  }
  if (!Number.isSafeInteger(p.keepForMs) || p.keepForMs < 0 || p.keepForMs > MAX_KEEP_FOR_MS) {
    throw invalidArgument(`job ${jobId}: retention.keepForMs ${String(p.keepForMs)} must be an integer from 0 to ${MAX_KEEP_FOR_MS}`);
  }
  return { keepLast: p.keepLast, keepForMs: p.keepForMs };
}

export interface EpochFacts {
  epoch: bigint;
  parentEpoch: bigint | null;
  full: boolean;
  /** On the shell's clock (the same one that steps the core). */
  committedAtMs: number;
}

export type RetentionInput =
  /** A job the collector learns of: its policy and the committed epochs its store holds (not counted, see above). */
  | { kind: 'jobKnown'; jobId: string; gridManaged: boolean; policy: RetentionPolicy; epochs: EpochFacts[] }
  | { kind: 'committed'; jobId: string; facts: EpochFacts }
  /** An accepted grid PREPARE named `epoch` as its parent: the grid's newest line. */
  | { kind: 'gridLine'; jobId: string; epoch: bigint }
  /** The grid restored the job here at `epoch` (null: from nothing): epochs above it are no longer lines. */
  | { kind: 'gridRestored'; jobId: string; epoch: bigint | null }
  | { kind: 'retired'; jobId: string; epoch: bigint }
  /** An environment failure: the epoch stays; the job's next commit tries again. */
  | { kind: 'retireFailed'; jobId: string; epoch: bigint; reason: string }
  | { kind: 'forget'; jobId: string };

export type RetentionAction = { kind: 'retire'; jobId: string; epoch: bigint };

interface Known { facts: EpochFacts; counted: boolean }

interface JobState {
  gridManaged: boolean;
  policy: RetentionPolicy;
  epochs: Map<bigint, Known>;
  inFlight: bigint | null;
  /** A retirement failed: wait for the next commit before trying again (no hot loop on a broken disk). */
  blocked: boolean;
  retired: number;
  lastError: string;
}

export interface RetentionConfig {
  maxJobs: number;
  mutants?: ReadonlySet<string>;
}

export interface RetentionStatus { jobId: string; epochs: number; roots: number; retired: number; lastError: string }

export class RetentionCore {
  private readonly jobs = new Map<string, JobState>();
  private nowMs = 0;

  constructor(private readonly config: RetentionConfig) {}

  knows(jobId: string): boolean {
    return this.jobs.has(jobId);
  }

  step(input: RetentionInput, nowMs: number): RetentionAction[] {
    if (nowMs > this.nowMs) this.nowMs = nowMs;
    const job = input.kind === 'jobKnown' ? this.learn(input) : this.jobs.get(input.jobId);
    if (!job) return [];
    switch (input.kind) {
      case 'jobKnown': break;
      case 'committed':
        job.epochs.set(input.facts.epoch, { facts: { ...input.facts }, counted: !job.gridManaged });
        job.blocked = false;
        break;
      case 'gridLine': {
        const k = job.epochs.get(input.epoch);
        if (k) k.counted = true;
        break;
      }
      case 'gridRestored':
        for (const [e, k] of job.epochs) if (input.epoch === null || e > input.epoch) k.counted = false;
        break;
      case 'retired':
        if (job.inFlight === input.epoch) job.inFlight = null;
        if (job.epochs.delete(input.epoch)) job.retired += 1;
        break;
      case 'retireFailed':
        if (job.inFlight === input.epoch) job.inFlight = null;
        job.blocked = true;
        job.lastError = `retiring epoch ${input.epoch}: ${input.reason}`;
        break;
      case 'forget':
        this.jobs.delete(input.jobId);
        return [];
    }
    return this.plan(input.jobId, job);
  }

  /** The epochs of the job that must stay (roots and their chains), ascending. */
  retained(jobId: string): bigint[] {
    const job = this.jobs.get(jobId);
    return job ? [...this.closure(job)].sort(cmp) : [];
  }

  status(): RetentionStatus[] {
    return [...this.jobs].sort(([a], [b]) => (a < b ? -1 : 1)).map(([jobId, j]) => ({
      jobId, epochs: j.epochs.size, roots: this.roots(j).size, retired: j.retired, lastError: j.lastError,
    }));
  }

  checkInvariants(): void {
    if (this.jobs.size > this.config.maxJobs) throw new Error(`R4: ${this.jobs.size} jobs, at most ${this.config.maxJobs}`);
    for (const [jobId, j] of this.jobs) {
      if (j.inFlight === null) continue;
      const newest = this.newest(j);
      if (j.inFlight === newest) throw new Error(`R1: job ${jobId} retires its newest epoch ${newest}`);
      if (this.closure(j).has(j.inFlight) && !this.mutant('gc-ignores-chain')) throw new Error(`R2: job ${jobId} retires epoch ${j.inFlight}, which a retained epoch needs`);
    }
  }

  private learn(input: Extract<RetentionInput, { kind: 'jobKnown' }>): JobState | undefined {
    const old = this.jobs.get(input.jobId);
    if (old) {
      old.policy = input.policy;
      old.gridManaged = input.gridManaged;
      return old;
    }
    if (this.jobs.size >= this.config.maxJobs) return undefined; // R4: such a job is not collected (nothing is lost)
    const epochs = new Map<bigint, Known>();
    // A local job's store epochs are all restore points of its own; a grid job's may have been passed over.
    for (const f of input.epochs) epochs.set(f.epoch, { facts: { ...f }, counted: !input.gridManaged });
    const job: JobState = { gridManaged: input.gridManaged, policy: input.policy, epochs, inFlight: null, blocked: false, retired: 0, lastError: '' };
    this.jobs.set(input.jobId, job);
    return job;
  }

  private keep(j: JobState): number {
    if (j.gridManaged && !this.mutant('gc-forgets-grid-lines')) return Math.max(j.policy.keepLast, GRID_KEEP_LINES);
    return j.policy.keepLast;
  }

  private newest(j: JobState): bigint | null {
    let n: bigint | null = null;
    for (const e of j.epochs.keys()) if (n === null || e > n) n = e;
    return n;
  }

  private roots(j: JobState): Set<bigint> {
    const sorted = [...j.epochs.keys()].sort(cmp);
    const roots = new Set<bigint>();
    const newest = sorted.at(-1);
    if (newest !== undefined) roots.add(newest);
    const counted = sorted.filter((e) => j.epochs.get(e)!.counted);
    for (const e of counted.slice(-this.keep(j))) roots.add(e);
    // A grid job: what lies at or above its newest confirmed line may still become (or be) a line.
    const newestLine = counted.at(-1);
    if (j.gridManaged) for (const e of sorted) if (newestLine === undefined || e >= newestLine) roots.add(e);
    if (!j.gridManaged && j.policy.keepForMs > 0) {
      for (const [e, k] of j.epochs) if (this.nowMs - k.facts.committedAtMs < j.policy.keepForMs) roots.add(e);
    }
    return roots;
  }

  /** R2: the roots and every epoch on their chains. A chain with a link this core does not know keeps everything below its root. */
  private closure(j: JobState): Set<bigint> {
    const keep = new Set<bigint>();
    for (const root of this.roots(j)) {
      let at: bigint | null = root;
      while (at !== null && !keep.has(at)) {
        const k = j.epochs.get(at);
        if (!k) {
          for (const e of j.epochs.keys()) if (e < root) keep.add(e);
          break;
        }
        keep.add(at);
        if (this.mutant('gc-ignores-chain')) break;
        at = k.facts.full ? null : k.facts.parentEpoch;
      }
    }
    return keep;
  }

  private plan(jobId: string, j: JobState): RetentionAction[] {
    if (j.inFlight !== null || j.blocked) return [];
    const keep = this.closure(j);
    const sorted = [...j.epochs.keys()].sort(cmp);
    const need = this.keep(j);
    let countedAbove = 0;
    const countedAboveOf = new Map<bigint, number>();
    for (let i = sorted.length - 1; i >= 0; i--) {
      countedAboveOf.set(sorted[i]!, countedAbove);
      if (j.epochs.get(sorted[i]!)!.counted) countedAbove += 1;
    }
    for (const e of [...sorted].reverse()) {
      if (keep.has(e)) continue;
      if (countedAboveOf.get(e)! < need) continue; // R3
      j.inFlight = e;
      return [{ kind: 'retire', jobId, epoch: e }];
    }
    return [];
  }

  private mutant(name: string): boolean {
    return this.config.mutants?.has(name) ?? false;
  }
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
