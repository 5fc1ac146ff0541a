// Who may decide for the grid when two or three grid coordinators elect a
// leader through an etcd lease (docs/grid-ha.md), as a pure core: the
// election's facts in (elected with a term, a keepalive acknowledged, the
// lease or the key lost), time in, and out the two decisions of a candidate
// — lead with this term, or step down — plus mayDecide(now), which a shell
// asks before anything leaves as the leader's.
//
// Intuition: etcd deletes the leader's key when its lease expires, counted
// on etcd's side from the last keepalive it received. A keepalive sent at t
// and acknowledged therefore keeps the lease alive until at least t + lease
// (etcd received it after t). The leader holds itself valid only until then,
// less a margin for clock rates, and steps down at that instant by its own
// clock even if it hears nothing: so it has stopped before any standby can
// be elected, and whatever it still had in flight carries its term, which
// the clusters then refuse once they have heard from the newer leader
// (protocol/grid-fence.ts). In the simulator a lease model stands in for
// etcd (src/sim/etcd-model.ts).
//
// Invariants (checkInvariants; tests cite them as L1..L3):
//  L1. Leading only within validity: a leader's validUntilMs is at most its
//      last acknowledged keepalive's send time + leaseMs − marginMs, and it
//      is no leader past it (a step at or after it steps down).
//  L2. Terms only grow: each election's term is above every earlier one.
//  L3. One term, one reign: once stepped down from a term it never leads it again.

export interface LeadershipConfig {
  /** The etcd lease's TTL. */
  leaseMs: number;
  /** Subtracted from the lease for clock-rate differences between this process and etcd. */
  marginMs: number;
}

export type LeadershipInput =
  /** The campaign won: our key is the oldest; `renewedSentAtMs`: the send time of the grant or the last acknowledged keepalive. */
  | { kind: 'elected'; term: bigint; renewedSentAtMs: number }
  /** A keepalive sent at `sentAtMs` was acknowledged with the lease alive. */
  | { kind: 'keptAlive'; sentAtMs: number }
  /** The lease or our key is gone (etcd said so, a guarded write found another leader, the campaign failed). */
  | { kind: 'lost'; reason: string }
  | { kind: 'tick' };

export type LeadershipAction =
  | { kind: 'lead'; term: bigint }
  | { kind: 'stepDown'; term: bigint; reason: string };

export type LeadershipState =
  | { role: 'candidate'; lastTerm: bigint }
  | { role: 'leader'; term: bigint; renewedSentAtMs: number; validUntilMs: number };

export function validateLeadershipConfig(c: LeadershipConfig): LeadershipConfig {
  if (!Number.isSafeInteger(c.leaseMs) || c.leaseMs < 1) throw new Error(`leaseMs must be a positive integer, got ${c.leaseMs}`);
  if (!Number.isSafeInteger(c.marginMs) || c.marginMs < 0 || c.marginMs >= c.leaseMs) throw new Error(`marginMs must be 0 or more and below the lease (${c.leaseMs}), got ${c.marginMs}`);
  return c;
}

export class Leadership {
  private st: LeadershipState = { role: 'candidate', lastTerm: 0n };
  private nowMs = 0;

  constructor(private readonly config: LeadershipConfig) {
    validateLeadershipConfig(config);
  }

  step(input: LeadershipInput, nowMs: number): LeadershipAction[] {
    if (nowMs < this.nowMs) throw new Error(`leadership time went back: ${nowMs} < ${this.nowMs}`);
    this.nowMs = nowMs;
    const out: LeadershipAction[] = [];
    switch (input.kind) {
      case 'elected': this.onElected(input.term, input.renewedSentAtMs, out); break;
      case 'keptAlive':
        if (this.st.role === 'leader' && input.sentAtMs > this.st.renewedSentAtMs) {
          this.st.renewedSentAtMs = input.sentAtMs;
          this.st.validUntilMs = this.validUntil(input.sentAtMs);
        }
        break;
      case 'lost': this.stepDown(input.reason, out); break;
      case 'tick': break;
    }
    // L1: a leader whose validity ran out steps down, whatever it heard.
    if (this.st.role === 'leader' && nowMs >= this.st.validUntilMs) {
      this.stepDown(`no keepalive acknowledged since ${this.st.renewedSentAtMs} ms: the lease may have expired`, out);
    }
    return out;
  }

  /** Whether this process may act as the leader now (a shell asks before anything it sends or writes as one). */
  mayDecide(nowMs: number): boolean {
    return this.st.role === 'leader' && nowMs < this.st.validUntilMs;
  }

  nextDeadline(): number | null {
    return this.st.role === 'leader' ? this.st.validUntilMs : null;
  }

  state(): LeadershipState {
    return { ...this.st };
  }

  checkInvariants(): void {
    if (this.st.role !== 'leader') return;
    if (this.st.validUntilMs > this.st.renewedSentAtMs + this.config.leaseMs - this.config.marginMs) throw new Error(`L1: valid until ${this.st.validUntilMs}, past the lease from ${this.st.renewedSentAtMs}`);
    if (this.nowMs >= this.st.validUntilMs) throw new Error(`L1: leading at ${this.nowMs}, past its validity ${this.st.validUntilMs}`);
  }

  private onElected(term: bigint, renewedSentAtMs: number, out: LeadershipAction[]): void {
    const last = this.st.role === 'leader' ? this.st.term : this.st.lastTerm;
    // L2, L3: an election that is not newer than one we had is a shell's bug.
    if (term <= last) throw new Error(`L2: elected with term ${term}, not above ${last}`);
    if (this.st.role === 'leader') this.stepDown(`elected again with term ${term}`, out);
    const validUntilMs = this.validUntil(renewedSentAtMs);
    if (this.nowMs >= validUntilMs) {
      // Elected with a lease already too old to lead on: campaign again.
      this.st = { role: 'candidate', lastTerm: term };
      out.push({ kind: 'stepDown', term, reason: 'elected with a lease already expired' });
      return;
    }
    this.st = { role: 'leader', term, renewedSentAtMs, validUntilMs };
    out.push({ kind: 'lead', term });
  }

  private stepDown(reason: string, out: LeadershipAction[]): void {
    if (this.st.role !== 'leader') return;
    const term = this.st.term;
    this.st = { role: 'candidate', lastTerm: term };
    out.push({ kind: 'stepDown', term, reason });
  }

  private validUntil(sentAtMs: number): number {
    return sentAtMs + this.config.leaseMs - this.config.marginMs;
  }
}
