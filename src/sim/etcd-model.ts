import type { GridJobRow } from '../grid/core/supervisor-types.js';
import { SimProcess, type World } from './world.js';

// The simulator's stand-in for etcd (docs/grid-ha.md): a lease model, no
// more. Each candidate grid coordinator campaigns with a lease of its own and
// a key created under it; the key's create revision is the candidate's term
// and the oldest live key leads (the etcd election recipe). A lease lives
// until leaseMs after the last keepalive etcd received; then its key goes.
// The catalog is one value whose put is guarded by the writer's key (a
// transaction comparing its create revision), so a deposed leader's write is
// refused. It never crashes: an etcd cluster's own faults are not modelled,
// only the grid's links to it (a cut between a grid process and 'etcd').

interface Lease { id: number; holder: string; expiresAtMs: number; term: bigint }

export class SimEtcd {
  readonly proc: SimProcess;
  private revision = 0n;
  private nextLease = 1;
  private readonly leases = new Map<number, Lease>();
  catalog: GridJobRow[] = [];
  /** Deleted jobs' highest epochs, beside the rows (job control). */
  forgotten: Record<string, string> = {};
  /** Every term that led (was the oldest live key when a keepalive asked), in order: the checkers' record. */
  readonly reigns: Array<{ holder: string; term: bigint; atMs: number }> = [];

  constructor(world: World, private readonly leaseMs: number) {
    this.proc = new SimProcess('etcd', world);
    this.proc.start();
  }

  /** A new lease and a key under it: the campaign's term. */
  campaign(holder: string): { leaseId: number; term: bigint } {
    this.expire();
    this.revision += 1n;
    const lease: Lease = { id: this.nextLease++, holder, expiresAtMs: this.proc.world.nowMs + this.leaseMs, term: this.revision };
    this.leases.set(lease.id, lease);
    return { leaseId: lease.id, term: lease.term };
  }

  /** A keepalive: whether the lease lives (renewed), and whether its key is the oldest (it leads). */
  keepAlive(leaseId: number): { alive: boolean; leads: boolean } {
    this.expire();
    const lease = this.leases.get(leaseId);
    if (!lease) return { alive: false, leads: false };
    lease.expiresAtMs = this.proc.world.nowMs + this.leaseMs;
    const leads = this.leader()?.id === leaseId;
    if (leads && this.reigns.at(-1)?.term !== lease.term) this.reigns.push({ holder: lease.holder, term: lease.term, atMs: this.proc.world.nowMs });
    return { alive: true, leads };
  }

  /** The catalog, written whole by the leader of `term` only. */
  putCatalog(term: bigint, rows: GridJobRow[], forgotten: Record<string, string>): boolean {
    this.expire();
    if (this.leader()?.term !== term) return false;
    this.catalog = structuredClone(rows);
    this.forgotten = { ...forgotten };
    return true;
  }

  getCatalog(): { rows: GridJobRow[]; forgotten: Record<string, string> } {
    return { rows: structuredClone(this.catalog), forgotten: { ...this.forgotten } };
  }

  /** The term of the oldest live key (null: none). */
  leaderTerm(): bigint | null {
    this.expire();
    return this.leader()?.term ?? null;
  }

  private leader(): Lease | null {
    let best: Lease | null = null;
    for (const l of this.leases.values()) if (best === null || l.term < best.term) best = l;
    return best;
  }

  private expire(): void {
    const now = this.proc.world.nowMs;
    for (const [id, l] of this.leases) if (now >= l.expiresAtMs) this.leases.delete(id);
  }
}
