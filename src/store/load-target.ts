// Where a restore puts the pages it has verified (epoch-reader.ts loadInto).
// A target that can lend memory (the node agent's page memory) has pages read
// straight into it: no copy between the read and the page's frame. Lent
// memory is not a page yet: a page becomes content only when `install` is
// called, after its bytes were checked against their CRC. A target that lends
// nothing (a plain sink) gets a copy of each checked page.
// Invariants (the reader's duties):
//   1. installRun, copy and zero are called only for pages whose content was
//      checked against their CRC32C; once per page restored.
//   2. Every address `place` lent is either installed or given back (`release`),
//      whatever happens, and never while a read into it is in flight.

export interface LoadTarget {
  /** Memory lent for direct reads: byte address a lies in regions[floor(a / regionBytes)] at a % regionBytes. */
  readonly regions: readonly Uint8Array[];
  readonly regionBytes: number;
  /** An address where (container, page)'s 4 KiB may be read, not visible as the page until installed; -1: none (copy instead). */
  place(container: string, page: number): number;
  /** The bytes read at `address` for `count` pages from `firstPage` (consecutive addresses) are checked: they become their content. */
  installRun(container: string, firstPage: number, count: number, address: number): void;
  /** A lent address not installed (the load failed), back to the target. */
  release(address: number): void;
  /** The page's checked content, valid only during the call. */
  copy(container: string, page: number, data: Uint8Array): void;
  /** The page is a zero page (checked against the zero page's CRC when its table was read). */
  zero(container: string, page: number): void;
}

/** A sink called once per page with its checked content (a view valid only during the call). */
export type PageSink = (container: string, page: number, data: Uint8Array) => void;

/** A target that lends nothing: every page is copied to `sink`. */
export function sinkTarget(sink: PageSink, zeroPage: Uint8Array): LoadTarget {
  return {
    regions: [],
    regionBytes: 1,
    place: () => -1,
    installRun: () => {
      throw new Error('sinkTarget lends no memory');
    },
    release: () => undefined,
    copy: sink,
    zero: (container, page) => sink(container, page, zeroPage),
  };
}
