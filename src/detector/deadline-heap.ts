import { assert } from '../common/errors.js';

// An indexed binary min-heap of items keyed by (deadlineMs, name): the
// monitor's next threshold crossings, earliest first, ties broken by name so
// the order of simultaneous verdict changes is deterministic. Each item
// records its own position, so moving or removing one is O(log n).
//
// Invariants:
//   1. Every item's heapIndex is its position; items out of the heap have -1.
//   2. No item is before its parent in (deadlineMs, name) order.
//   3. The heap holds at most `capacity` items.

export interface HeapItem {
  readonly name: string;
  deadlineMs: number;
  heapIndex: number;
}

function before(a: HeapItem, b: HeapItem): boolean {
  if (a.deadlineMs !== b.deadlineMs) return a.deadlineMs < b.deadlineMs;
  return a.name < b.name;
}

export class DeadlineHeap<T extends HeapItem> {
  private readonly items: T[] = [];
  readonly capacity: number;

  constructor(capacity: number) {
    assert(Number.isSafeInteger(capacity) && capacity > 0, `bad heap capacity ${capacity}`);
    this.capacity = capacity;
  }

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  has(item: T): boolean {
    return item.heapIndex >= 0 && this.items[item.heapIndex] === item;
  }

  /** Inserts the item, or moves it if its deadline changed. */
  set(item: T, deadlineMs: number): void {
    if (!(Number.isFinite(deadlineMs))) assert(false, `bad deadline ${deadlineMs}`);
    item.deadlineMs = deadlineMs;
    if (!this.has(item)) {
      assert(this.items.length < this.capacity, 'deadline heap full');
      item.heapIndex = this.items.length;
      this.items.push(item);
    }
    this.up(item.heapIndex);
    this.down(item.heapIndex);
  }

  remove(item: T): void {
    if (!this.has(item)) return;
    const i = item.heapIndex;
    const last = this.items.pop()!;
    item.heapIndex = -1;
    if (last === item) return;
    this.items[i] = last;
    last.heapIndex = i;
    this.up(i);
    this.down(i);
  }

  private swap(i: number, j: number): void {
    const a = this.items[i]!;
    const b = this.items[j]!;
    this.items[i] = b;
    this.items[j] = a;
    a.heapIndex = j;
    b.heapIndex = i;
  }

  private up(start: number): void {
    let i = start;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(this.items[i]!, this.items[parent]!)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(start: number): void {
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < this.items.length && before(this.items[l]!, this.items[best]!)) best = l;
      if (r < this.items.length && before(this.items[r]!, this.items[best]!)) best = r;
      if (best === i) return;
      this.swap(i, best);
      i = best;
    }
  }

  checkInvariants(): void {
    assert(this.items.length <= this.capacity, 'deadline heap over capacity');
    this.items.forEach((item, i) => {
      assert(item.heapIndex === i, `heap item ${item.name} records index ${item.heapIndex}, is at ${i}`);
      if (i > 0) assert(!before(item, this.items[(i - 1) >> 1]!), `heap order broken at ${i}`);
    });
  }
}
