import { GridError } from '../../common/errors.js';
import type { NodeCapacity } from './placement.js';

// Where units adopted from a lost cluster run here. Pure.
// In the lost cluster's epoch, a unit's containers are in the parts of the
// node it ran on and of every node whose parts that node had taken over
// (partOwners: writer → holder). Those parts restore whole on ONE node here,
// so all of a holder's units move together, to the node with the most free
// room that fits them (largest group first); a container is never loaded on
// two nodes. Without an epoch the units start anew and are placed one by one.

export interface ForeignEpochLayout {
  /** unit → node of the lost cluster, as recorded in its manifest. */
  placement: Record<string, string>;
  /** writer → holder in the lost cluster; absent writers hold their own parts. */
  partOwners: Record<string, string>;
}

export interface AdoptionPlan {
  placement: Map<string, string>;
  /** Writer of the lost cluster's parts → the node here that loads them. */
  holders: Map<string, string>;
}

/**
 * sticky: the layout is this cluster's own (a rollback): a group goes back
 * to the node of the same name when it is alive with room.
 */
export function planAdoption(unitIds: readonly string[], layout: ForeignEpochLayout | null, nodes: readonly NodeCapacity[], sticky = false): AdoptionPlan {
  const free = new Map(nodes.map((n) => [n.nodeId, n.capacityUnits - n.placedUnits]));
  const pick = (size: number, what: string, home?: string): string => {
    const stay = home !== undefined && (free.get(home) ?? -1) >= size ? ([home, free.get(home)!] as const) : undefined;
    const best = stay ?? [...free].filter(([, f]) => f >= size).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0];
    if (!best) {
      const room = [...free.values()].reduce((a, f) => Math.max(a, f), 0);
      throw new GridError('resource-exhausted', `no alive node has room for ${what} (${size} units; the most room on one node is ${room})`);
    }
    free.set(best[0], best[1] - size);
    return best[0];
  };
  const placement = new Map<string, string>();
  const holders = new Map<string, string>();
  if (layout === null) {
    for (const u of unitIds) placement.set(u, pick(1, `unit ${u}`));
    return { placement, holders };
  }
  const groups = new Map<string, string[]>();
  for (const u of unitIds) {
    const node = layout.placement[u];
    if (node === undefined) throw new GridError('failed-precondition', `unit ${u} is not in the lost cluster's epoch`);
    groups.set(node, [...(groups.get(node) ?? []), u]);
  }
  const order = [...groups].sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]));
  for (const [foreignNode, units] of order) {
    const here = pick(units.length, `the units of ${foreignNode}`, sticky ? foreignNode : undefined);
    for (const u of units) placement.set(u, here);
    holders.set(foreignNode, here);
    for (const [writer, holder] of Object.entries(layout.partOwners)) if (holder === foreignNode) holders.set(writer, here);
  }
  return { placement, holders };
}
