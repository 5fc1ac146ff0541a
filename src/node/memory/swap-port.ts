// The one narrow interface through which page memory reaches its swap space
// (CONVENTIONS §3, ports). A real implementation writes a file on local disk
// (swap-file.ts); a simulated one keeps pages in a Map and can inject faults
// (swap-memory.ts). Both are synchronous: eviction and swap-in happen inside
// a single PageMemory call, and a failure is a thrown error that PageMemory
// survives with its invariants intact.

/** Bytes per page: the unit of ownership, swap and checkpoint. */
export const PAGE_BYTES = 4096;

export interface SwapPort {
  /** Stores exactly PAGE_BYTES from `page` at `slot`. The port must copy: the caller reuses the buffer. */
  write(slot: number, page: Uint8Array): void;
  /** Fills `into` (exactly PAGE_BYTES) with what was last written at `slot`. */
  read(slot: number, into: Uint8Array): void;
  close(): void;
}

/** Checks the arguments every port receives; a failure is a bug in the caller, so it throws a plain Error. */
export function checkSlotAndPage(what: string, slot: number, page: Uint8Array): void {
  if (!Number.isSafeInteger(slot) || slot < 0) {
    throw new Error(`swap ${what}: bad slot ${String(slot)}`);
  }
  if (!(page instanceof Uint8Array) || page.length !== PAGE_BYTES) {
    throw new Error(`swap ${what}: slot ${slot} needs a ${PAGE_BYTES}-byte buffer`);
  }
}
