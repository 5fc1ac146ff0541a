import { assert, invariantBroken } from '../../common/errors.js';

// An intrusive doubly-linked list over the integers 0..capacity-1 (frame
// indices), most recently used at the head, least recently used at the tail.
// Links live in two Int32Arrays, so every operation is O(1) and allocates
// nothing; NONE (-1) ends the list. A member's links are never NONE-and-NONE
// unless it is the only member, so membership is tracked in its own bitmap.

export const NONE = -1;

export class LruList {
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly member: Uint8Array;
  private head = NONE;
  private tail = NONE;
  private count = 0;

  constructor(capacity: number) {
    this.prev = new Int32Array(capacity).fill(NONE);
    this.next = new Int32Array(capacity).fill(NONE);
    this.member = new Uint8Array(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** The least recently used member, or NONE when empty. */
  oldest(): number {
    return this.tail;
  }

  has(i: number): boolean {
    return this.member[i] === 1;
  }

  /** Adds a non-member as the most recently used. */
  pushFront(i: number): void {
    if (this.member[i] !== 0) invariantBroken(`lru: ${i} is already a member`);
    this.member[i] = 1;
    this.prev[i] = NONE;
    this.next[i] = this.head;
    if (this.head !== NONE) this.prev[this.head] = i;
    else this.tail = i;
    this.head = i;
    this.count += 1;
  }

  remove(i: number): void {
    if (this.member[i] !== 1) invariantBroken(`lru: ${i} is not a member`);
    const p = this.prev[i]!;
    const n = this.next[i]!;
    if (p !== NONE) this.next[p] = n;
    else this.head = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tail = p;
    this.prev[i] = NONE;
    this.next[i] = NONE;
    this.member[i] = 0;
    this.count -= 1;
  }

  /** Marks a member as the most recently used. */
  touch(i: number): void {
    if (this.head === i) return;
    this.remove(i);
    this.pushFront(i);
  }

  /** Members from most to least recently used (for invariant checks and tests). */
  *fromNewest(): Generator<number> {
    for (let i = this.head, steps = 0; i !== NONE; i = this.next[i]!, steps += 1) {
      assert(steps < this.count, 'lru: list is longer than its count (cycle?)');
      yield i;
    }
  }

  /** Throws when links, ends, membership and count disagree. O(capacity). */
  checkInvariants(): void {
    let walked = 0;
    let last = NONE;
    for (let i = this.head; i !== NONE; i = this.next[i]!) {
      assert(walked < this.count, 'lru: walk from head exceeds count (cycle?)');
      assert(this.member[i] === 1, `lru: ${i} is linked but not a member`);
      assert(this.prev[i] === last, `lru: prev of ${i} is ${this.prev[i]}, expected ${last}`);
      last = i;
      walked += 1;
    }
    assert(walked === this.count, `lru: walked ${walked} members, count says ${this.count}`);
    assert(this.tail === last, `lru: tail is ${this.tail}, walk ended at ${last}`);
    let members = 0;
    for (let i = 0; i < this.member.length; i += 1) members += this.member[i]!;
    assert(members === this.count, `lru: ${members} membership bits, count says ${this.count}`);
  }
}
