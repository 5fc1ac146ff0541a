import { checkSlotAndPage, PAGE_BYTES, type SwapPort } from './swap-port.js';

// A simulated swap port for unit tests and the simulator: pages live in a
// Map, and the next write or read can be told to fail, so tests can check
// that PageMemory stays consistent after an environment failure.

export class MemorySwap implements SwapPort {
  private readonly slots = new Map<number, Uint8Array>();
  private failWrites = 0;
  private failReads = 0;
  private closed = false;
  writes = 0;
  reads = 0;

  /** The next `count` writes throw (without storing anything). */
  failNextWrite(count = 1): void {
    this.failWrites = count;
  }

  /** The next `count` reads throw (without touching the destination). */
  failNextRead(count = 1): void {
    this.failReads = count;
  }

  /** Disarms any pending injected fault. */
  clearFaults(): void {
    this.failWrites = 0;
    this.failReads = 0;
  }

  /** Injected faults not yet fired. */
  get pendingFaults(): number {
    return this.failWrites + this.failReads;
  }

  /** Slots written so far (a slot, once written, stays until overwritten). */
  slotCount(): number {
    return this.slots.size;
  }

  write(slot: number, page: Uint8Array): void {
    this.checkOpen();
    checkSlotAndPage('write', slot, page);
    if (this.failWrites > 0) {
      this.failWrites -= 1;
      throw new Error(`injected swap write failure at slot ${slot}`);
    }
    this.writes += 1;
    this.slots.set(slot, page.slice());
  }

  read(slot: number, into: Uint8Array): void {
    this.checkOpen();
    checkSlotAndPage('read', slot, into);
    if (this.failReads > 0) {
      this.failReads -= 1;
      throw new Error(`injected swap read failure at slot ${slot}`);
    }
    const stored = this.slots.get(slot);
    if (stored === undefined) throw new Error(`swap read: slot ${slot} was never written`);
    this.reads += 1;
    into.set(stored.subarray(0, PAGE_BYTES));
  }

  close(): void {
    this.closed = true;
    this.slots.clear();
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('swap used after close');
  }
}
