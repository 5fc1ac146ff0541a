import { assert } from '../../common/errors.js';
import { NONE } from './lru.js';

// Hands out swap slots: the lowest never-used slot, or one given back (a
// page swapped in or dropped) from a free list, so the swap file never grows
// past the most pages that were ever swapped out at once.

export class SwapSlots {
  private highWater = 0;
  private readonly freeList: number[] = [];

  get inUse(): number {
    return this.highWater - this.freeList.length;
  }

  get extent(): number {
    return this.highWater;
  }

  take(): number {
    const reused = this.freeList.pop();
    if (reused !== undefined) return reused;
    assert(this.highWater < 0x7fffffff, 'swap slots exhausted');
    const slot = this.highWater;
    this.highWater += 1;
    return slot;
  }

  give(slot: number): void {
    assert(slot !== NONE && slot >= 0 && slot < this.highWater, `swap slot ${slot} was never handed out`);
    this.freeList.push(slot);
  }

  /** Marks free slots in `seen` (length extent); a slot both free and used is a bug. */
  markFree(seen: Uint8Array): void {
    for (const s of this.freeList) {
      assert(seen[s] === 0, `swap slot ${s} is free twice or both free and used`);
      seen[s] = 1;
    }
  }
}
