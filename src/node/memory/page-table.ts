import { assert, invariantBroken } from '../../common/errors.js';
import { NONE } from './lru.js';
import type { ContainerInfo, PageCoherence } from './types.js';

// The metadata of one container's pages, one typed array per field so a
// 1 GiB container (262,144 pages) costs 18 bytes a page and no objects.
// A page is in exactly one place: zero (frame and slot both NONE), resident
// (frame set) or swapped (slot set) — PageMemory keeps that, this file only
// stores it.

export const STATE_MODIFIED = 0;
export const STATE_EXCLUSIVE = 1;
export const STATE_SHARED = 2;
export const STATE_INVALID = 3;
export const COHERENCE_NAMES: readonly PageCoherence[] = ['modified', 'exclusive', 'shared', 'invalid'];

export class PageTable {
  /** Index in PageMemory's table list; frames point back to (id, page). */
  readonly id: number;
  readonly jobId: string;
  readonly name: string;
  readonly pageCount: number;
  readonly frame: Int32Array;
  readonly slot: Int32Array;
  /** Integer versions (exact up to 2^53), exposed as bigint. */
  readonly version: Float64Array;
  readonly changed: Uint8Array;
  readonly state: Uint8Array;
  changedCount: number;

  constructor(id: number, jobId: string, name: string, pageCount: number) {
    this.id = id;
    this.jobId = jobId;
    this.name = name;
    this.pageCount = pageCount;
    this.frame = new Int32Array(pageCount).fill(NONE);
    this.slot = new Int32Array(pageCount).fill(NONE);
    this.version = new Float64Array(pageCount);
    // New pages are zero and count as changed, so the first epoch saves them.
    this.changed = new Uint8Array(pageCount).fill(1);
    this.state = new Uint8Array(pageCount).fill(STATE_EXCLUSIVE);
    this.changedCount = pageCount;
  }

  info(): ContainerInfo {
    return { jobId: this.jobId, name: this.name, pageCount: this.pageCount, pagesChanged: this.changedCount };
  }

  setChanged(page: number, changed: boolean): void {
    const now = changed ? 1 : 0;
    if (this.changed[page] === now) return;
    this.changed[page] = now;
    this.changedCount += changed ? 1 : -1;
  }

  clearAllChanged(): void {
    this.changed.fill(0);
    this.changedCount = 0;
  }

  bumpVersion(page: number): void {
    const v = this.version[page]!;
    if (!(v < Number.MAX_SAFE_INTEGER)) invariantBroken(`version of page ${page} of "${this.name}" would pass 2^53`);
    this.version[page] = v + 1;
  }

  /** Per-table checks that do not need the frame pool or the slot allocator. */
  checkInvariants(): void {
    let changed = 0;
    for (let p = 0; p < this.pageCount; p += 1) {
      const c = this.changed[p]!;
      assert(c === 0 || c === 1, `"${this.name}" page ${p}: changed flag ${c}`);
      changed += c;
      assert(this.state[p]! <= STATE_INVALID, `"${this.name}" page ${p}: state ${this.state[p]}`);
      const v = this.version[p]!;
      assert(Number.isSafeInteger(v) && v >= 0, `"${this.name}" page ${p}: version ${v}`);
      assert(this.frame[p] === NONE || this.slot[p] === NONE, `"${this.name}" page ${p} is both resident and swapped`);
    }
    assert(changed === this.changedCount, `"${this.name}": ${changed} changed flags, count says ${this.changedCount}`);
  }
}
