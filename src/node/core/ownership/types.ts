import type { DirectoryEntry, DirectoryLayout } from '../../../protocol/core/ownership/directory.js';

// The ownership core's config, inputs, messages and outputs (ownership-node.ts).
// D is a page's content and W a write op on it: both opaque to the core, which
// only moves them and applies W through config.apply (a pure function). A
// shell gives frame handles; the simulator gives small immutable arrays.

/** A node's copy of a page (docs/ownership.md has the diagram). */
export type PageState = 'invalid' | 'shared' | 'owner-exclusive' | 'owner-shared';

export interface OwnershipConfig<D, W> {
  nodeId: string;
  /** Applies one write op to a page's content; pure, returns new content. */
  apply: (data: D, op: W) => D;
  /** How often a sender sends an unacknowledged transfer again. */
  retransmitMs: number;
  /** Unit ops waiting at once (reads and batches); more are refused. */
  maxWaitingOps: number;
  /** Distinct pages one atomic batch may touch. */
  maxBatchPages: number;
  /** Deliberately broken variants, for the simulator's mutants only. */
  mutants?: ReadonlySet<string>;
}

export type Want = 'read' | 'write' | 'evict';

/** Node-to-node messages; every one carries the directory epoch (fencing). */
export type PeerBody<D> =
  /** requester -> manager. evict: the owner asks to hand the page to `to`. */
  | { kind: 'request'; page: number; reqId: number; want: Want; to?: string }
  /** manager -> requester: queued behind a checkpoint's gate, not started. */
  | { kind: 'held'; page: number; reqId: number }
  /** manager -> evict requester: it no longer owns the page, nothing done. */
  | { kind: 'cancel'; page: number; reqId: number }
  /** manager -> owner: give `dest` a copy (read) or the page (write, evict). */
  | { kind: 'forward'; page: number; grant: number; reqId: number; requester: string; want: Want; dest: string; exclusive: boolean }
  /** owner -> manager: the page is pinned by a batch behind a closed gate; queue the request again, held. */
  | { kind: 'refused'; page: number; grant: number }
  /** manager -> a copy holder, and its answer. */
  | { kind: 'invalidate'; page: number; grant: number }
  | { kind: 'invalidated'; page: number; grant: number }
  /** manager -> a requester that already owns the page (upgrade). */
  | { kind: 'grant'; page: number; grant: number; reqId: number; want: Want }
  /** owner -> reader: a read-only copy. */
  | { kind: 'copy'; page: number; grant: number; reqId: number; version: number; data: D }
  /** owner -> new owner; the sender keeps the page until transferAck (resent). */
  | { kind: 'transfer'; page: number; grant: number; reqId: number | null; version: number; data: D; exclusive: boolean }
  | { kind: 'transferAck'; page: number; grant: number }
  /** the node that received the page (or grant) -> manager: the action is complete. */
  | { kind: 'done'; page: number; grant: number };

export interface PeerMsg<D> {
  from: string;
  epoch: number;
  body: PeerBody<D>;
}

export interface PageImage<D> {
  page: number;
  version: number;
  data: D;
}

export type OwnershipInput<D, W> =
  /** The coordinator's (re)configuration: a restore or a rebuild for a new directory epoch. */
  | { kind: 'install'; layout: DirectoryLayout; pages: PageImage<D>[]; directory: DirectoryEntry[] }
  | { kind: 'read'; reqId: number; page: number }
  /** An atomic batch: every op applies, or none; pages are taken in page order. */
  | { kind: 'write'; reqId: number; ops: Array<{ page: number; op: W }> }
  /** Memory pressure: hand an owned page to `to` (ownership moves with it). */
  | { kind: 'evict'; page: number; to: string }
  | { kind: 'message'; msg: PeerMsg<D> }
  /** A round of the coordinator (approach II B): gate and drain, save, reopen. */
  | { kind: 'freeze'; epoch: number; round: number }
  | { kind: 'cut'; epoch: number; round: number }
  /** Round 0 opens the gate an install closed. */
  | { kind: 'thaw'; epoch: number; round: number }
  | { kind: 'tick' };

export type UnitReply<D> =
  | { reqId: number; kind: 'read'; page: number; version: number; data: D }
  | { reqId: number; kind: 'written'; versions: Array<{ page: number; version: number }> }
  /** A restore replaced the job's pages: the op did not apply. */
  | { reqId: number; kind: 'aborted' }
  | { reqId: number; kind: 'refused'; reason: string };

export type CoordinatorReport<D> =
  /** Installed and gated: the coordinator thaws round 0 once every member is (no message meets an old epoch). */
  | { kind: 'installed'; epoch: number }
  | { kind: 'drained'; epoch: number; round: number }
  /** The pages this node owns at the cut: it, and no other node, saves them. */
  | { kind: 'saved'; epoch: number; round: number; pages: PageImage<D>[] };

export interface OwnershipStep<D> {
  send: Array<{ to: string; msg: PeerMsg<D> }>;
  reply: UnitReply<D>[];
  report: CoordinatorReport<D>[];
}

/** One node's view of a page, for checkers and status. */
export interface PageView<D> {
  state: PageState;
  version: number;
  data: D | null;
}
