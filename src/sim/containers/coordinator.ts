import { buildDirectory, type DirectoryLayout, type HoldingReport } from '../../protocol/core/ownership/directory.js';
import type { CoordinatorReport, OwnershipInput, PageImage } from '../../node/core/ownership/ownership-node.js';
import { Violation } from '../checkers.js';
import type { Balances, Credit } from './bank.js';

// The cluster coordinator's side of the containers scenario, as the
// simulator models it (its own core is a later step): checkpoint rounds of
// approach II B (freeze -> every node drained -> cut -> every node saved ->
// the cut is committed -> thaw), and recovery: when a node dies the job is
// restored from the last committed cut onto the nodes alive, under a new
// directory epoch whose directory is built from what each node is given
// (the holdings it reports); a node that comes back joins at the next
// committed cut the same way, which loses nothing (the job is gated).

export interface CoordinatorPort {
  nowMs: () => number;
  alive: () => string[];
  /** Delivers an input to a node after a network delay (dropped if it dies). */
  tell: (node: string, input: OwnershipInput<Balances, Credit>) => void;
  onSaved: (node: string, pages: readonly PageImage<Balances>[]) => void;
  onCommit: (round: number, saved: ReadonlyMap<string, readonly PageImage<Balances>[]>) => void;
  /** The job is restored from these images: the checkers' model starts over (rollback) or must equal them (a join). */
  onRestore: (pages: readonly PageImage<Balances>[], rollback: boolean) => void;
  onRecovered: () => void;
  /** Why a node has not drained (a stuck round's diagnosis). */
  describe: (node: string) => string;
  log: (line: string) => void;
}

interface Round { round: number; phase: 'draining' | 'saving'; drained: Set<string>; saved: Map<string, PageImage<Balances>[]>; startedMs: number }

const ROUND_STUCK_MS = 400;

export class SimContainerCoordinator {
  epoch = 0;
  members: string[] = [];
  private lastCut: Array<PageImage<Balances> & { saver: string }> = [];
  private round: Round | null = null;
  private rounds = 0;
  private installing: Set<string> | null = null;
  private readonly joining = new Set<string>();
  committed = 0;
  recoveries = 0;
  joins = 0;

  constructor(private readonly port: CoordinatorPort, private readonly layoutBase: { rangePages: number; pageCount: number }) {}

  start(pages: readonly PageImage<Balances>[], members: readonly string[]): void {
    this.lastCut = pages.map((p, i) => ({ ...p, saver: members[i % members.length]! }));
    this.install([...members].sort(), true);
  }

  busy(): boolean {
    return this.round !== null || this.installing !== null;
  }

  /** A round, unless one runs or the job is being installed. */
  startRound(): void {
    if (this.busy()) return;
    const round = ++this.rounds;
    this.round = { round, phase: 'draining', drained: new Set(), saved: new Map(), startedMs: this.port.nowMs() };
    this.port.log(`ROUND ${round} freeze (epoch ${this.epoch})`);
    for (const m of this.members) this.port.tell(m, { kind: 'freeze', epoch: this.epoch, round });
  }

  onReport(node: string, r: CoordinatorReport<Balances>): void {
    if (r.epoch !== this.epoch) return;
    if (r.kind === 'installed') {
      if (!this.installing?.delete(node) || this.installing.size > 0) return;
      this.installing = null;
      this.port.log(`EPOCH ${this.epoch} installed on ${this.members.join(',')}`);
      for (const m of this.members) this.port.tell(m, { kind: 'thaw', epoch: this.epoch, round: 0 });
      this.port.onRecovered();
      return;
    }
    const rd = this.round;
    if (!rd || r.round !== rd.round) return;
    if (r.kind === 'drained') {
      rd.drained.add(node);
      if (rd.phase !== 'draining' || rd.drained.size < this.members.length) return;
      rd.phase = 'saving';
      this.port.log(`ROUND ${rd.round} cut`);
      for (const m of this.members) this.port.tell(m, { kind: 'cut', epoch: this.epoch, round: rd.round });
      return;
    }
    this.port.onSaved(node, r.pages);
    rd.saved.set(node, r.pages);
    if (rd.saved.size < this.members.length) return;
    this.port.onCommit(rd.round, rd.saved);
    this.committed += 1;
    this.lastCut = [...rd.saved].flatMap(([saver, ps]) => ps.map((p) => ({ ...p, saver }))).sort((a, b) => a.page - b.page);
    this.round = null;
    this.port.log(`ROUND ${rd.round} committed`);
    const back = [...this.joining].filter((n) => this.port.alive().includes(n));
    this.joining.clear();
    if (back.length > 0) {
      this.joins += 1;
      return this.install(this.port.alive().sort(), false);
    }
    for (const m of this.members) this.port.tell(m, { kind: 'thaw', epoch: this.epoch, round: rd.round });
  }

  /** A member died: the round (if any) is abandoned and the job restored from the last cut on the nodes alive. */
  onCrash(node: string): void {
    if (!this.members.includes(node)) return;
    this.round = null;
    this.recoveries += 1;
    this.install(this.port.alive().filter((n) => n !== node).sort(), true);
  }

  onRestart(node: string): void {
    this.joining.add(node);
  }

  /** Liveness: a round that neither commits nor is abandoned within ROUND_STUCK_MS is a deadlock. */
  check(): void {
    const rd = this.round;
    if (rd && this.port.nowMs() - rd.startedMs > ROUND_STUCK_MS) {
      throw new Violation('liveness', `round ${rd.round} stuck ${rd.phase} for ${ROUND_STUCK_MS} ms (drained: ${[...rd.drained].join(',') || 'none'}, saved: ${[...rd.saved.keys()].join(',') || 'none'}; ${this.members.map((m) => `${m} ${this.port.describe(m)}`).join('; ')})`);
    }
  }

  private install(members: string[], rollback: boolean): void {
    this.epoch += 1;
    this.members = members;
    const layout: DirectoryLayout = { epoch: this.epoch, members, ...this.layoutBase };
    // Each page goes to the node that saved it, if it is a member still; else to one picked by page number.
    const owner = this.lastCut.map((p) => (members.includes(p.saver) ? p.saver : members[p.page % members.length]!));
    const reports: HoldingReport[] = members.map((m) => ({ node: m, pages: owner.flatMap((o, page) => (o === m ? [page] : [])) }));
    const directory = buildDirectory(layout, reports);
    this.installing = new Set(members);
    this.port.onRestore(this.lastCut.map(({ page, version, data }) => ({ page, version, data })), rollback);
    this.port.log(`EPOCH ${this.epoch} install on ${members.join(',')}`);
    for (const m of members) {
      const pages = this.lastCut.filter((p) => owner[p.page] === m).map(({ page, version, data }) => ({ page, version, data }));
      this.port.tell(m, { kind: 'install', layout, pages, directory: directory.get(m)! });
    }
  }
}
