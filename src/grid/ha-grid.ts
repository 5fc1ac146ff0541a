import { Etcd3, EtcdLeaseInvalidError, type Lease } from 'etcd3';
import type { Logger } from '../common/log.js';
import type { TierRuntime } from '../wire/clients.js';
import { Leadership, type LeadershipInput } from './core/leadership.js';
import { EtcdCatalog } from './etcd-catalog.js';
import type { GridRole } from './grid-service.js';
import type { GridShell } from './shell.js';

// A grid coordinator that campaigns for leadership through etcd
// (docs/grid-ha.md): the shell around the leadership core
// (core/leadership.ts). Each campaign is a lease of its own and a key under
// it, <prefix>/election/<lease id>, whose value is this process's gRPC
// address; the key's create revision is the term, and the oldest key
// leads (the etcd election recipe). Every third of the lease a keepalive
// goes out; once acknowledged, a read says whether our key is the oldest:
// the core hears `elected` (then keptAlive) with the keepalive's send time,
// and decides. Elected, the shell reads the catalog from etcd and starts a
// GridShell on it with the term as its fence; deposed (validity ran out, the
// lease expired, a guarded write failed), it stops that shell, revokes the
// lease and campaigns anew. A standby serves GridStatus only (grid-service.ts).

export interface HaGridOptions {
  gridId: string;
  incarnation: bigint;
  etcdHosts: string[];
  /** The etcd lease; whole seconds for etcd (rounded up), at least 1 s. */
  leaseMs: number;
  /** This process's gRPC address, published as its election key's value. */
  address: string;
  log: Logger;
  runtime: TierRuntime;
  /** A GridShell leading with this term over this catalog; mayDecide is the leadership's verdict now. */
  makeShell(term: bigint, catalog: EtcdCatalog, mayDecide: () => boolean): GridShell;
  /** This process became the leader or stepped down (Watch, logs). */
  onLeadership?(change: { to: 'leader' | 'standby'; term: bigint; detail: string }): void;
}

/** The keys of a grid's election and catalog in etcd. */
export function etcdPrefix(gridId: string): string {
  return `/gridckpt/${gridId}`;
}

export class HaGrid implements GridRole {
  readonly gridId: string;
  readonly incarnation: bigint;
  private readonly client: Etcd3;
  private readonly leadership: Leadership;
  private readonly prefix: string;
  private readonly leaseSeconds: number;
  private current: GridShell | null = null;
  private lease: Lease | null = null;
  private mine: { key: string; term: bigint } | null = null;
  private leader: { term: bigint; address: string } = { term: 0n, address: '' };
  private deadline: unknown = null;
  private keepAliveTimer: unknown = null;
  private stopped = false;
  /** Bumped at each campaign: a keepalive or a load of an earlier one is dropped. */
  private campaignNo = 0;
  /** When this process last became the leader (monotonic ms; null: never), and how many times it did. */
  ledSinceMs: number | null = null;
  takeovers = 0;

  constructor(private readonly o: HaGridOptions) {
    this.gridId = o.gridId;
    this.incarnation = o.incarnation;
    this.prefix = etcdPrefix(o.gridId);
    this.leaseSeconds = Math.max(1, Math.ceil(o.leaseMs / 1000));
    const leaseMs = this.leaseSeconds * 1000;
    // A margin for clock rates between this process and etcd, and for the read after the keepalive.
    this.leadership = new Leadership({ leaseMs, marginMs: Math.max(100, Math.floor(leaseMs / 10)) });
    this.client = new Etcd3({ hosts: o.etcdHosts, dialTimeout: leaseMs });
  }

  shell(): GridShell | null {
    return this.current;
  }

  view(): { role: 'leader' | 'standby'; leaderTerm: bigint; leaderAddress: string } {
    return { role: this.current ? 'leader' : 'standby', leaderTerm: this.leader.term, leaderAddress: this.leader.address };
  }

  /** The lease etcd holds (whole seconds). */
  get leaseMs(): number {
    return this.leaseSeconds * 1000;
  }

  start(): void {
    void this.campaign();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.clearTimers();
    this.current?.shutdown();
    this.current = null;
    // Resign: a standby takes over at once rather than after the lease.
    await this.lease?.revoke().catch(() => undefined);
    this.client.close();
  }

  private now(): number {
    return this.o.runtime.clock.nowMs();
  }

  private callOptions(): { deadline: number } {
    return { deadline: this.o.runtime.clock.wallMs() + Math.floor(this.leaseMs / 3) };
  }

  private async campaign(): Promise<void> {
    if (this.stopped) return;
    const no = ++this.campaignNo;
    try {
      const lease = this.client.lease(this.leaseSeconds, { autoKeepAlive: false });
      this.lease = lease;
      const sentAtMs = this.now();
      const id = await lease.grant();
      const key = `${this.prefix}/election/${id}`;
      const r = await this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(this.o.address).lease(id)).commit();
      if (no !== this.campaignNo) return;
      this.mine = { key, term: BigInt(r.header.revision) };
      this.o.log.info({ term: String(this.mine.term), key }, 'campaigning for the grid\'s leadership');
      await this.keepAlive(no, lease, sentAtMs, true);
    } catch (err) {
      if (no !== this.campaignNo || this.stopped) return;
      this.o.log.warn({ err: String(err) }, 'etcd: could not campaign; trying again');
      this.keepAliveTimer = this.o.runtime.timers.setTimer(() => void this.campaign(), Math.floor(this.leaseMs / 3));
    }
  }

  /** One keepalive (or the grant, first), then the leadership read; the next one a third of the lease later. */
  private async keepAlive(no: number, lease: Lease, sentAtMs: number, granted: boolean): Promise<void> {
    try {
      if (!granted) await lease.keepaliveOnce(this.callOptions());
      const oldest = (await this.client.getAll().prefix(`${this.prefix}/election/`).sort('Create', 'Ascend').limit(1).options(this.callOptions()).exec()).kvs[0];
      if (no !== this.campaignNo) return;
      if (oldest) this.leader = { term: BigInt(oldest.create_revision), address: oldest.value.toString() };
      const mine = this.mine!;
      if (oldest && oldest.key.toString() === mine.key) {
        const s = this.leadership.state();
        this.feed(s.role === 'leader' && s.term === mine.term ? { kind: 'keptAlive', sentAtMs } : { kind: 'elected', term: mine.term, renewedSentAtMs: sentAtMs });
      }
    } catch (err) {
      if (no !== this.campaignNo) return;
      if (err instanceof EtcdLeaseInvalidError) {
        this.feed({ kind: 'lost', reason: 'etcd says the lease expired' });
        return this.restart();
      }
      // Unreachable etcd: nothing to decide here; the core steps down when its validity runs out.
      this.o.log.warn({ err: String(err) }, 'etcd keepalive failed');
    }
    if (no !== this.campaignNo || this.stopped) return;
    this.keepAliveTimer = this.o.runtime.timers.setTimer(() => void this.keepAlive(no, lease, this.now(), false), Math.floor(this.leaseMs / 3));
  }

  private feed(input: LeadershipInput): void {
    for (const a of this.leadership.step(input, this.now())) {
      if (a.kind === 'lead') void this.lead(a.term);
      else {
        this.o.log.warn({ term: String(a.term), reason: a.reason }, 'stepped down: no longer the grid\'s leader');
        if (this.current) this.o.onLeadership?.({ to: 'standby', term: a.term, detail: `stepped down from term ${a.term}: ${a.reason}` });
        this.current?.shutdown();
        this.current = null;
        this.restart();
      }
    }
    this.leadership.checkInvariants();
    if (this.deadline !== null) this.o.runtime.timers.clearTimer(this.deadline);
    this.deadline = null;
    const at = this.leadership.nextDeadline();
    if (at !== null) this.deadline = this.o.runtime.timers.setTimer(() => this.feed({ kind: 'tick' }), Math.max(0, at - this.now()));
  }

  /** Elected: the catalog from etcd, then the shell on it, if still leading by then. */
  private async lead(term: bigint): Promise<void> {
    const no = this.campaignNo;
    const mine = this.mine!;
    try {
      const catalog = await EtcdCatalog.load(this.client, this.prefix, mine, (reason) => this.feed({ kind: 'lost', reason }));
      if (no !== this.campaignNo || !this.leadership.mayDecide(this.now())) return;
      this.current = this.o.makeShell(term, catalog, () => this.leadership.mayDecide(this.now()));
      this.leader = { term, address: this.o.address };
      this.ledSinceMs = this.now();
      this.takeovers += 1;
      this.o.log.info({ term: String(term), jobs: catalog.rows().length, leaderSinceUnixMs: this.o.runtime.clock.wallMs() }, 'elected: this grid coordinator leads');
      this.o.onLeadership?.({ to: 'leader', term, detail: `grid ${this.gridId} at ${this.o.address} leads (term ${term}, ${catalog.rows().length} jobs in the catalog)` });
    } catch (err) {
      if (no !== this.campaignNo) return;
      this.feed({ kind: 'lost', reason: `could not read the catalog from etcd: ${String(err)}` });
    }
  }

  /** A new campaign: the old lease is revoked (its key goes with it), a new one gets a newer term. */
  private restart(): void {
    this.campaignNo += 1;
    this.clearKeepAlive();
    const old = this.lease;
    this.lease = null;
    this.mine = null;
    void old?.revoke().catch(() => undefined);
    void this.campaign();
  }

  private clearKeepAlive(): void {
    if (this.keepAliveTimer !== null) this.o.runtime.timers.clearTimer(this.keepAliveTimer);
    this.keepAliveTimer = null;
  }

  private clearTimers(): void {
    this.clearKeepAlive();
    if (this.deadline !== null) this.o.runtime.timers.clearTimer(this.deadline);
    this.deadline = null;
  }
}
