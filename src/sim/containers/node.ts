import { OwnershipNode, type OwnershipInput, type OwnershipStep } from '../../node/core/ownership/ownership-node.js';
import { SimProcess, type World } from '../world.js';
import { applyCredit, BANK, type Balances, type Credit } from './bank.js';

// One agent of the containers scenario: a process (crash, restart with a new
// incarnation), the ownership core of the job's containers, the job's units
// on it, and its own timer for the core's deadline (resends).

export const OWNERSHIP = { retransmitMs: 10, maxWaitingOps: 64, maxBatchPages: 4 };

export interface UnitSlot { busy: number | null; sinceMs: number }

export class SimOwnNode {
  readonly proc: SimProcess;
  core: OwnershipNode<Balances, Credit>;
  /** Units stopped by a round's freeze until its thaw. */
  frozen = false;
  units: UnitSlot[] = [];
  private armedMs: number | null = null;

  constructor(readonly id: string, private readonly world: World, private readonly mutants: ReadonlySet<string>, private readonly perform: (n: SimOwnNode, out: OwnershipStep<Balances>) => void) {
    this.proc = new SimProcess(id, world);
    this.core = this.newCore();
  }

  private newCore(): OwnershipNode<Balances, Credit> {
    return new OwnershipNode<Balances, Credit>({ nodeId: this.id, apply: applyCredit, ...OWNERSHIP, mutants: this.mutants });
  }

  start(): void {
    this.proc.start();
    this.core = this.newCore();
    this.frozen = false;
    this.armedMs = null;
    this.units = Array.from({ length: BANK.unitsPerNode }, () => ({ busy: null, sinceMs: 0 }));
  }

  input(i: OwnershipInput<Balances, Credit>): void {
    if (!this.proc.alive) return;
    if (i.kind === 'freeze' && i.epoch === this.core.epoch()) this.frozen = true;
    if (i.kind === 'thaw' || i.kind === 'install') this.frozen = false;
    const out = this.core.step(i, this.world.nowMs);
    this.perform(this, out);
    this.arm();
  }

  private arm(): void {
    const d = this.core.nextDeadline();
    if (d === null || (this.armedMs !== null && this.armedMs <= d)) return;
    this.armedMs = d;
    this.proc.deliver(Math.max(0, d - this.world.nowMs), () => {
      this.armedMs = null;
      this.input({ kind: 'tick' });
    });
  }
}
