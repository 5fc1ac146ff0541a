import { moveFailedNode, placeUnits, type NodeCapacity } from './placement.js';

// Where a restart puts a job's units (pure). Units of lost nodes — whose
// leases the restart has waited out — move together to the alive node with
// the most room; units with no registered node are placed anew; every other
// unit stays where it is (invariants C1 and C2 of supervisor.ts). Throws
// resource-exhausted when the room is not there.

export interface RestartPlanInput {
  units: readonly string[];
  placement: ReadonlyMap<string, string>;
  lost: ReadonlySet<string>;
  /** Every registered node's room, not counting this job's own units. */
  room: readonly NodeCapacity[];
  /** Alive and not lost: where units may go. */
  usable: (nodeId: string) => boolean;
}

export function planRestart(i: RestartPlanInput): Map<string, string> {
  const registered = new Set(i.room.map((c) => c.nodeId));
  const room = i.room.filter((c) => i.usable(c.nodeId)).map((c) => ({ ...c }));
  const unplaced = i.units.filter((u) => !registered.has(i.placement.get(u) ?? ''));
  let placement = new Map([...i.placement].filter(([u]) => !unplaced.includes(u)));
  if (unplaced.length > 0) {
    for (const [u, n] of placeUnits(unplaced, room)) placement.set(u, n);
    for (const c of room) c.placedUnits += [...placement].filter(([u, n]) => unplaced.includes(u) && n === c.nodeId).length;
  }
  for (const failed of [...new Set(placement.values())].filter((n) => i.lost.has(n)).sort()) {
    const moved = moveFailedNode(placement, failed, room);
    placement = moved.placement;
    room.find((c) => c.nodeId === moved.spareNodeId)!.placedUnits += moved.moved.length;
  }
  return placement;
}
