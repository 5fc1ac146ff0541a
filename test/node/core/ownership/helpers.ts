import { OwnershipNode, type OwnershipInput, type PeerMsg } from '../../../../src/node/core/ownership/ownership-node.js';
import { buildDirectory, type DirectoryLayout } from '../../../../src/protocol/core/ownership/directory.js';

// A tiny cluster for exact-output tests: nodes n1..n3, page p managed by
// members[p mod 3] (rangePages 1), content a string, a write op appends.

export type Node = OwnershipNode<string, string>;

export const LAYOUT: DirectoryLayout = { epoch: 1, members: ['n1', 'n2', 'n3'], rangePages: 1, pageCount: 3 };

export function cluster(owners: Record<number, string>, mutants?: ReadonlySet<string>): Map<string, Node> {
  const nodes = new Map<string, Node>();
  const reports = LAYOUT.members.map((m) => ({ node: m, pages: Object.entries(owners).filter(([, o]) => o === m).map(([p]) => Number(p)) }));
  const dir = buildDirectory(LAYOUT, reports);
  for (const m of LAYOUT.members) {
    const n = new OwnershipNode<string, string>({ nodeId: m, apply: (d, op) => d + op, retransmitMs: 10, maxWaitingOps: 8, maxBatchPages: 3, ...(mutants ? { mutants } : {}) });
    const pages = reports.find((r) => r.node === m)!.pages.map((page) => ({ page, version: 0, data: `p${page}:` }));
    n.step({ kind: 'install', layout: LAYOUT, pages, directory: dir.get(m)! }, 0);
    n.step({ kind: 'thaw', epoch: 1, round: 0 }, 0);
    nodes.set(m, n);
  }
  return nodes;
}

export function msg(from: string, body: PeerMsg<string>['body'], epoch = 1): OwnershipInput<string, string> {
  return { kind: 'message', msg: { from, epoch, body } };
}

export const EMPTY = { send: [], reply: [], report: [] };
