import { GridError } from '../../common/errors.js';

// Where a job's units run. Pure.
// A job is placed least-loaded-first over the nodes that are alive, within
// each node's capacity. When a node fails, all of its units move together to
// ONE spare node (the alive one with the most free capacity that can take them
// all): its checkpoint part then restores whole on that node, and no container
// is ever loaded on two nodes.
// Invariants:
//   1. Every unit is placed on exactly one node, and no node exceeds its capacity.
//   2. Moving a failed node's units changes no other unit's placement.

export interface NodeCapacity {
  nodeId: string;
  capacityUnits: number;
  placedUnits: number;
}

export function placeUnits(unitIds: readonly string[], nodes: readonly NodeCapacity[]): Map<string, string> {
  const free = nodes.map((n) => ({ nodeId: n.nodeId, free: n.capacityUnits - n.placedUnits }));
  const total = free.reduce((a, n) => a + Math.max(0, n.free), 0);
  if (unitIds.length > total) {
    throw new GridError('resource-exhausted', `${unitIds.length} units do not fit: the alive nodes have room for ${total}`);
  }
  const placement = new Map<string, string>();
  for (const unitId of unitIds) {
    free.sort((a, b) => b.free - a.free || a.nodeId.localeCompare(b.nodeId));
    const target = free[0]!;
    placement.set(unitId, target.nodeId);
    target.free -= 1;
  }
  return placement;
}

export function moveFailedNode(
  placement: ReadonlyMap<string, string>,
  failedNodeId: string,
  spares: readonly NodeCapacity[],
): { placement: Map<string, string>; spareNodeId: string; moved: string[] } {
  const moved = [...placement].filter(([, n]) => n === failedNodeId).map(([u]) => u);
  const candidates = spares
    .filter((n) => n.nodeId !== failedNodeId && n.capacityUnits - n.placedUnits >= moved.length)
    .sort((a, b) => (b.capacityUnits - b.placedUnits) - (a.capacityUnits - a.placedUnits) || a.nodeId.localeCompare(b.nodeId));
  const spare = candidates[0];
  if (!spare) {
    throw new GridError('resource-exhausted', `no alive node has room for the ${moved.length} units of failed node ${failedNodeId}`);
  }
  const next = new Map(placement);
  for (const u of moved) next.set(u, spare.nodeId);
  return { placement: next, spareNodeId: spare.nodeId, moved };
}
