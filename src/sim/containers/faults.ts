import type { SeededRng } from '../../runtime/rng.js';

// The containers scenario's faults, drawn from the seed (docs/ownership.md):
//  delay-stream            one node pair's messages take 10-40 ms more for a while (reordering between streams)
//  lose-transfer           the next 1-3 page transfers or their acks are lost (the sender resends)
//  transfer-at-cut         the next transfer is held 25 ms and a round starts at once: in flight at the freeze
//  evict-race              an owner evicts a page to one node while a third node grabs it for a write
//  evict-at-cut            every node evicts an owned page as the cut goes out
//  owner-crash-mid-transfer the next node to send a page dies right after (recovery from the last cut)
//  manager-crash           the node managing the most busy pages dies (the directory is rebuilt)

export type ContainerFaultKind =
  | 'delay-stream' | 'lose-transfer' | 'transfer-at-cut' | 'evict-race' | 'evict-at-cut'
  | 'owner-crash-mid-transfer' | 'manager-crash';

export const CONTAINER_FAULT_KINDS: readonly ContainerFaultKind[] = [
  'delay-stream', 'lose-transfer', 'transfer-at-cut', 'evict-race', 'evict-at-cut', 'owner-crash-mid-transfer', 'manager-crash',
];

export interface ContainerFault {
  atMs: number;
  kind: ContainerFaultKind;
  /** Restart after / heal after. */
  durationMs: number;
  count: number;
  /** Drawn picks (node pair, page), each taken modulo what exists when it falls. */
  pick: number;
}

export interface ContainerFaultShape {
  kinds?: readonly ContainerFaultKind[];
  count?: number;
}

export function drawContainerFaults(rng: SeededRng, windowMs: { fromMs: number; toMs: number }, shape: ContainerFaultShape = {}): ContainerFault[] {
  const kinds = shape.kinds ?? CONTAINER_FAULT_KINDS;
  const n = shape.count ?? 2 + rng.int(4);
  const out: ContainerFault[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      atMs: windowMs.fromMs + rng.int(windowMs.toMs - windowMs.fromMs),
      kind: kinds[rng.int(kinds.length)]!,
      durationMs: 100 + rng.int(200),
      count: 1 + rng.int(3),
      pick: rng.int(1 << 20),
    });
  }
  return out.sort((a, b) => a.atMs - b.atMs || a.kind.localeCompare(b.kind));
}
