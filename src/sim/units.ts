import type { NodeParticipant, ParticipantInput, UnitOp } from '../node/core/participant.js';
import type { RestoreSource } from '../protocol/messages.js';
import { applyOp, initialState, type UnitState } from './bank-model.js';
import type { SimStore } from './store.js';
import type { SimProcess } from './world.js';

// An agent's units as simulated processes: each copy of a unit does one bank
// op every few ms while its agent lets it (running, not frozen, lease held;
// NodeParticipant.mayRun), and exits after its last op. The agent's effects
// on them (spawn with restore, kill, freeze, snapshot, thaw) come from the
// participant's sends; results go back as participant inputs.

export interface UnitCopy {
  unit: string;
  jobId: string;
  agent: string;
  /** Distinguishes two copies of one unit (one per spawn). */
  copyId: number;
  state: UnitState;
  frozenSinceMs: number | null;
  killed: boolean;
  exited: boolean;
}

export interface UnitsEnv {
  proc: SimProcess;
  participant: () => NodeParticipant;
  input: (i: ParticipantInput) => void;
  store: (id: string) => SimStore | undefined;
  opsPerUnit: number;
  opIntervalMs: number;
  /** Called before a copy does an op: the simulator's split-brain check. */
  beforeOp: (copy: UnitCopy) => void;
  nextCopyId: () => number;
}

export class SimUnits {
  readonly copies = new Map<string, UnitCopy[]>();
  /** The snapshot in staging per job: unit -> state at the cut. */
  readonly staged = new Map<string, { epoch: bigint; units: Map<string, UnitState> }>();
  /** What each written part saved, per job and epoch (for the next incremental snapshot). */
  readonly saved = new Map<string, Map<bigint, Map<string, number>>>();

  constructor(private readonly env: UnitsEnv) {}

  apply(u: UnitOp): void {
    switch (u.op) {
      case 'spawn': return this.spawn(u.jobId, u.units, u.sources, u.reqId);
      case 'kill': return this.kill(u.jobId);
      case 'freeze':
        for (const c of this.copies.get(u.jobId) ?? []) c.frozenSinceMs ??= this.env.proc.world.nowMs;
        return;
      case 'thaw':
        for (const c of this.copies.get(u.jobId) ?? []) c.frozenSinceMs = null;
        return;
      case 'snapshot': return this.snapshot(u.jobId, u.epoch, u.full, u.parentEpoch);
      case 'dropStaging':
        if (this.staged.get(u.jobId)?.epoch === u.epoch) this.staged.delete(u.jobId);
        return;
      // Simulated units keep no change bits: the next snapshot compares against what the parent saved.
      case 'settle': return;
      // Simulated units hold no pages of an ended job: nothing to free.
      case 'forget': return;
      case 'write': throw new Error('a write is the agent\'s (SimAgent.writePart), not the units\'');
    }
  }

  all(): UnitCopy[] {
    return [...this.copies.values()].flat();
  }

  /** The agent died: its units die with it (their memory lives in the agent). */
  crash(): void {
    for (const c of this.all()) c.killed = true;
    this.copies.clear();
    this.staged.clear();
    this.saved.clear();
  }

  private kill(jobId: string): void {
    for (const c of this.copies.get(jobId) ?? []) c.killed = true;
    this.copies.delete(jobId);
    this.staged.delete(jobId);
  }

  private spawn(jobId: string, units: string[], sources: RestoreSource[], reqId: number): void {
    this.kill(jobId);
    this.saved.delete(jobId);
    const states = new Map<string, UnitState>();
    let corrupt: { store: string; epoch: bigint; reason: string } | null = null;
    for (const src of sources) {
      const store = this.env.store(src.store);
      for (const unit of src.units) {
        const r = store ? store.load(jobId, src.epoch, unit) : { error: `no store ${src.store}` };
        if ('error' in r) corrupt ??= { store: src.store, epoch: src.epoch, reason: r.error };
        else states.set(unit, r.state);
      }
    }
    const copies = corrupt ? [] : units.map((unit) => ({
      unit, jobId, agent: this.env.proc.id, copyId: this.env.nextCopyId(), state: states.get(unit) ?? initialState(),
      frozenSinceMs: null, killed: false, exited: false,
    }));
    this.copies.set(jobId, copies);
    // Loading takes a moment; the units start once the agent has answered.
    this.env.proc.deliver(2 + this.env.proc.world.rng.int(3), () => {
      this.env.input({ kind: 'spawned', jobId, reqId, corrupt });
      for (const c of copies) this.schedule(c);
    });
  }

  private snapshot(jobId: string, epoch: bigint, full: boolean, parentEpoch: bigint | null): void {
    this.env.proc.deliver(1 + this.env.proc.world.rng.int(3), () => {
      const copies = this.copies.get(jobId) ?? [];
      const base = full || parentEpoch === null ? undefined : this.saved.get(jobId)?.get(parentEpoch);
      const units = new Map<string, UnitState>();
      for (const c of copies) if (base === undefined || base.get(c.unit) !== c.state.op) units.set(c.unit, c.state);
      this.staged.set(jobId, { epoch, units });
      this.env.input({ kind: 'snapshotTaken', jobId, epoch, pages: units.size, bytes: units.size * 4096 });
    });
  }

  /** What the part of this epoch holds (the persist of writePart reads it). */
  stagedFor(jobId: string, epoch: bigint): Map<string, UnitState> | null {
    const s = this.staged.get(jobId);
    return s && s.epoch === epoch ? s.units : null;
  }

  /** A part was written: remember what it saved, for incremental snapshots on top of it. */
  recordSaved(jobId: string, epoch: bigint, units: Map<string, UnitState>): void {
    const byEpoch = this.saved.get(jobId) ?? new Map<bigint, Map<string, number>>();
    const copies = this.copies.get(jobId) ?? [];
    // A part holds only changed units; the rest are as saved at the parent (or unsaved).
    const ops = new Map<string, number>();
    for (const c of copies) {
      const s = units.get(c.unit);
      if (s) ops.set(c.unit, s.op);
    }
    const prev = [...byEpoch.keys()].filter((e) => e < epoch).sort((a, b) => (a < b ? -1 : 1)).at(-1);
    if (prev !== undefined) for (const [u, op] of byEpoch.get(prev)!) if (!ops.has(u)) ops.set(u, op);
    byEpoch.set(epoch, ops);
    for (const e of [...byEpoch.keys()].sort((a, b) => (a < b ? -1 : 1)).slice(0, -8)) byEpoch.delete(e);
    this.saved.set(jobId, byEpoch);
  }

  private schedule(c: UnitCopy): void {
    const w = this.env.proc.world;
    this.env.proc.deliver(this.env.opIntervalMs + w.rng.int(3), () => this.tick(c));
  }

  private tick(c: UnitCopy): void {
    if (c.killed || c.exited) return;
    if (c.frozenSinceMs !== null || !this.env.participant().mayRun(c.jobId, this.env.proc.world.nowMs)) return this.schedule(c);
    if (c.state.op >= this.env.opsPerUnit) return this.exit(c);
    this.env.beforeOp(c);
    c.state = applyOp(c.unit, c.state);
    if (c.state.op >= this.env.opsPerUnit) return this.exit(c);
    this.schedule(c);
  }

  private exit(c: UnitCopy): void {
    c.exited = true;
    const copies = this.copies.get(c.jobId) ?? [];
    if (copies.length > 0 && copies.every((x) => x.exited)) this.env.input({ kind: 'unitsExited', jobId: c.jobId, ok: true, reason: 'all units exited 0' });
  }
}
