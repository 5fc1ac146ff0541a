import type { ClusterEvent } from '../cluster/core/supervisor-types.js';
import { finalState, sameState, total, ACCOUNTS, OPENING } from './bank-model.js';
import type { SimCluster } from './cluster-member.js';
import type { SimAgent, SimGrid } from './members.js';
import { hasFiles, SimStore } from './store.js';
import { compareGridFence, describeGridFence, newerGridFence, NO_GRID_FENCE, type GridFence } from '../protocol/grid-fence.js';
import type { ClusterAnswer, ClusterCall, HeartbeatAnswer } from '../protocol/messages.js';
import type { UnitCopy } from './units.js';

// The invariants of ARCHITECTURE §3, checked by the simulator after every
// event, and the cores' own checkInvariants() after every step. A broken one
// throws a Violation naming the invariant; the run records it and stops.

export class Violation extends Error {
  constructor(readonly invariant: string, message: string) {
    super(`${invariant}: ${message}`);
  }
}

export interface CheckEnv {
  /** Each job's retention in the clusters: its newest keepLast committed epochs must stay restorable. */
  keepLast: number;
  /** The grid's recovery lines as its catalog on disk holds them (a restarted grid reads these). */
  catalogLines: () => ReadonlyArray<{ jobId: string; epoch: bigint; clusterEpochs: Record<string, string> }>;
  agents: Map<string, SimAgent>;
  clusters: Map<string, SimCluster>;
  grid: () => SimGrid;
  grids: SimGrid[];
  stores: Map<string, SimStore>;
  freezeTimeoutMs: number;
  opsPerUnit: number;
  nowMs: () => number;
}

export class Checkers {
  /** (job, epoch) pairs every grid incarnation has prepared at a cluster, and every cluster incarnation at a node: an epoch is never used twice. */
  private readonly prepared = new Set<string>();
  private checkedManifests = 0;
  private nextThawCheckMs = 0;
  /** Each cluster job's state as its events last said (cluster#job). */
  private readonly eventStates = new Map<string, string>();

  /** The newest grid fence each cluster incarnation has seen (cluster#incarnation), as the checker follows it (F1). */
  private readonly seenFences = new Map<string, GridFence>();

  constructor(private readonly env: CheckEnv) {}

  /**
   * F1 (protocol/grid-fence.ts): a cluster acts on no grid call whose fence is older than one it has seen, from
   * a call it answered or a heartbeat answer it took; such a call is refused as stale.
   */
  gridCallIn(cluster: string, call: ClusterCall): (answer: ClusterAnswer) => void {
    // Judged in the order the cluster's serial driver steps its inputs (a restore is answered long after).
    const key = this.clusterKey(cluster);
    const seen = this.seenFences.get(key) ?? NO_GRID_FENCE;
    const stale = compareGridFence(call.fence, seen) < 0;
    if (!stale) this.seenFences.set(key, newerGridFence(seen, call.fence));
    return (answer) => {
      const refusedStale = answer.kind === 'refused' && answer.stale === true;
      if (stale && !refusedStale) {
        throw new Violation('stale leader', `cluster ${cluster} acted on ${call.req.kind} of job ${call.req.jobId} from a deposed grid (${describeGridFence(call.fence)}) after hearing from ${describeGridFence(seen)}: answered ${answer.kind}`);
      }
      if (!stale && refusedStale) throw new Violation('stale leader', `cluster ${cluster} refused ${call.req.kind} from ${describeGridFence(call.fence)} as stale, having seen only ${describeGridFence(seen)}`);
    };
  }

  gridBeatAnswered(cluster: string, answer: HeartbeatAnswer): void {
    if (!answer.fence) return;
    const key = this.clusterKey(cluster);
    this.seenFences.set(key, newerGridFence(this.seenFences.get(key) ?? NO_GRID_FENCE, answer.fence));
  }

  private clusterKey(cluster: string): string {
    return `${cluster}#${this.env.clusters.get(cluster)!.proc.incarnation}`;
  }

  /** L1 (grid/core/leadership.ts): at most one grid coordinator may decide at any instant. */
  oneLeader(): void {
    if (this.env.grids.length < 2) return;
    const now = this.env.nowMs();
    const deciding = this.env.grids.filter((g) => g.proc.alive && g.leadership?.mayDecide(now));
    if (deciding.length > 1) throw new Violation('one leader', `grids ${deciding.map((g) => `${g.id} (term ${g.term})`).join(' and ')} may both decide at ${now} ms`);
  }

  /** A core's own invariants, after each of its steps. */
  core(member: string): void {
    try {
      const grid = this.env.grids.find((g) => g.id === member);
      if (grid) grid.core.checkInvariants();
      else if (this.env.clusters.has(member)) this.env.clusters.get(member)!.core.checkInvariants();
      else this.env.agents.get(member)?.core.checkInvariants();
    } catch (err) {
      throw new Violation('core invariant', err instanceof Error ? err.message : String(err));
    }
  }

  /** §3.1: a unit runs in one place: no two copies may change its pages at the same instant. */
  beforeOp(copy: UnitCopy): void {
    const now = this.env.nowMs();
    for (const a of this.env.agents.values()) {
      if (!a.proc.alive) continue;
      for (const other of a.units.copies.get(copy.jobId) ?? []) {
        if (other.unit !== copy.unit || other.copyId === copy.copyId || other.killed || other.exited) continue;
        if (a.core.mayRun(copy.jobId, now)) {
          throw new Violation('§3.1 one owner', `unit ${copy.unit} of job ${copy.jobId} runs on ${copy.agent} while its copy on ${a.id} may run too`);
        }
      }
    }
  }

  /**
   * Job control: a cancel (or delete) is answered "stopped" only once it is so where it was confirmed — at the
   * grid, each confirming cluster's share is no longer live; at a cluster, no unit of its job runs on a
   * confirming node.
   */
  cancelAnswered(target: string, jobId: string, confirmed: readonly string[]): void {
    const fail = (m: string): never => { throw new Violation('operator stop', `the cancel of job ${jobId} at ${target} was answered, but ${m}`); };
    for (const id of confirmed) {
      if (target === 'grid') {
        const c = this.env.clusters.get(id)!;
        const s = c.proc.alive ? c.core.jobState(jobId) : null;
        if (s === 'running' || s === 'recovering' || s === 'starting') fail(`cluster ${id}, which confirmed it, still holds its share ${s}`);
        continue;
      }
      const a = this.env.agents.get(id)!;
      if (!a.proc.alive) continue;
      const live = (a.units.copies.get(jobId) ?? []).find((u) => !u.killed && !u.exited);
      if (live) fail(`unit ${live.unit} still runs on ${id}, which confirmed the stop`);
    }
  }

  /** §3.4: no unit stays frozen past the freeze timeout on a live agent (pauses excepted). */
  alwaysThaw(pauseEnds: Map<string, number>): void {
    const now = this.env.nowMs();
    // The bound is tens of ms: looking every 10 ms of simulated time is exact enough and keeps runs fast.
    if (now < this.nextThawCheckMs) return;
    this.nextThawCheckMs = now + 10;
    const bound = this.env.freezeTimeoutMs + 50;
    for (const a of this.env.agents.values()) {
      if (!a.proc.runnable()) continue;
      for (const copies of a.units.copies.values()) for (const c of copies) {
        if (c.frozenSinceMs === null || c.killed) continue;
        const since = Math.max(c.frozenSinceMs, pauseEnds.get(a.id) ?? 0);
        if (now - since > bound) throw new Violation('§3.4 always thaw', `unit ${c.unit} on ${a.id} frozen for ${now - since} ms (bound ${bound})`);
      }
    }
  }

  /** §3.3: a committed epoch names only parts that are durable in its store; §3 (G3): no epoch is prepared twice. */
  storesAndEpochs(): void {
    let n = 0;
    for (const s of this.env.stores.values()) n += s.manifests.size;
    if (n === this.checkedManifests) return;
    this.checkedManifests = n;
    this.committedIntact();
  }

  committedIntact(): void {
    for (const s of this.env.stores.values()) {
      for (const m of s.manifests.values()) {
        for (const p of m.parts) {
          if (hasFiles(p) && !s.parts.has(SimStore.partKey(m.jobId, m.epoch, p.writer))) {
            throw new Violation('§3.3 atomic commit', `committed epoch ${m.epoch} of job ${m.jobId} in store ${s.id} names part ${p.writer}, which is not in the store`);
          }
        }
      }
    }
  }

  /**
   * Garbage collection is about to demote a committed epoch (retention, docs/store-lifecycle.md): it is not
   * the job's newest; it is on no chain of the newest keepLast committed epochs of the job in that store; and
   * on no chain of an epoch of that store that a recovery line of the grid names (in its memory or its catalog).
   */
  beforeRetire(storeId: string, jobId: string, epoch: bigint): void {
    const store = this.env.stores.get(storeId)!;
    const fail = (why: string): never => { throw new Violation('gc retained', `store ${storeId} retires epoch ${epoch} of job ${jobId}, ${why}`); };
    const present = [...store.manifests.values()].filter((m) => m.jobId === jobId).map((m) => m.epoch).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (present.at(-1) === epoch) fail('its newest committed epoch');
    const onChain = (root: bigint): boolean => {
      for (let at: bigint | null = root; at !== null;) {
        if (at === epoch) return true;
        const m = store.manifests.get(SimStore.manifestKey(jobId, at));
        at = m && !m.full ? m.parentEpoch : null;
      }
      return false;
    };
    for (const root of present.slice(-this.env.keepLast)) if (onChain(root)) fail(`which the chain of retained epoch ${root} needs`);
    const grid = this.env.grid();
    const live = grid.proc.alive ? grid.core.jobView(jobId)?.lines ?? [] : [];
    const lines = [...live.map((l) => ({ epoch: l.epoch, clusterEpochs: l.clusterEpochs })), ...this.env.catalogLines().filter((l) => l.jobId === jobId)];
    for (const l of lines) {
      const at = l.clusterEpochs[storeId];
      if (at === undefined || !store.manifests.has(SimStore.manifestKey(jobId, BigInt(at)))) continue;
      if (onChain(BigInt(at))) fail(`which recovery line ${l.epoch} of the grid needs (its epoch ${at} here)`);
    }
  }

  /** No epoch of a job is prepared twice on a node, whichever incarnation of its cluster asks (a local job's epochs are the cluster's). */
  clusterPrepare(cluster: string, node: string, jobId: string, epoch: bigint): void {
    const key = `${cluster}>${node}#${jobId}#${epoch}`;
    if (this.prepared.has(key)) throw new Violation('epochs are never reused', `cluster ${cluster} prepared epoch ${epoch} of job ${jobId} on ${node} twice`);
    this.prepared.add(key);
  }

  gridPrepare(cluster: string, jobId: string, epoch: bigint): void {
    const key = `${cluster}#${jobId}#${epoch}`;
    if (this.prepared.has(key)) throw new Violation('epochs are never reused', `the grid prepared epoch ${epoch} of job ${jobId} in ${cluster} twice`);
    this.prepared.add(key);
  }

  /**
   * A cluster core's events after a step: each job's state changes form a
   * chain (each one from the state the last one went to; a restarted
   * coordinator's start from nothing), and they name the state the core is in.
   */
  clusterEvents(cluster: string, events: ClusterEvent[], trace: ((line: string) => void) | null): void {
    for (const e of events) {
      if (e.kind !== 'jobState') continue;
      trace?.(`${cluster} job ${e.jobId}: ${e.from ?? 'new'} -> ${e.to} (${e.reason})`);
      const key = `${cluster}#${e.jobId}`;
      const last = this.eventStates.get(key);
      if (e.from !== null && last !== e.from) throw new Violation('events', `job ${e.jobId} in ${cluster} went from ${e.from} to ${e.to}, but its last event left it ${last ?? 'unknown'}`);
      this.eventStates.set(key, e.to);
    }
    const core = this.env.clusters.get(cluster)!.core;
    for (const id of core.jobIds()) {
      const told = this.eventStates.get(`${cluster}#${id}`);
      if (told !== core.jobState(id)) throw new Violation('events', `job ${id} in ${cluster} is ${core.jobState(id)}, but its events say ${told ?? 'nothing'}`);
    }
  }

  /** At the end: a cluster's local job completed, and its last epoch holds every unit's failure-free final state (§3.5). */
  finalLocal(cluster: string, jobId: string, units: string[]): void {
    const view = this.env.clusters.get(cluster)!.core.jobView(jobId);
    if (!view) throw new Violation('liveness', `cluster ${cluster} does not know its local job ${jobId}`);
    if (view.state !== 'completed') throw new Violation('liveness', `local job ${jobId} of ${cluster} ended ${view.state}: ${view.lastError}`);
    const store = this.env.stores.get(cluster)!;
    const epoch = view.lastEpoch;
    if (epoch === null) throw new Violation('§3.5 same answer', `local job ${jobId} of ${cluster} completed with no committed epoch`);
    if (store.newest(jobId)?.epoch !== epoch) throw new Violation('§3.5 same answer', `local job ${jobId} of ${cluster} ends at epoch ${epoch}, but its store's newest is ${store.newest(jobId)?.epoch}`);
    for (const u of units) {
      const r = store.load(jobId, epoch, u);
      if ('error' in r) throw new Violation('§3.5 same answer', `local job ${jobId} of ${cluster}, epoch ${epoch}: ${r.error}`);
      const want = finalState(u, this.env.opsPerUnit);
      if (!sameState(r.state, want)) {
        throw new Violation('§3.5 same answer', `unit ${u} of local job ${jobId} in ${cluster} is at op ${r.state.op} in epoch ${epoch}, the failure-free run ends at op ${want.op}`);
      }
    }
  }

  /** At the end: the job completed, and its last line holds every unit's failure-free final state (§3.5). */
  final(jobId: string, units: string[]): void {
    const view = this.env.grid().core.jobView(jobId);
    if (!view) throw new Violation('liveness', `the grid does not know job ${jobId}`);
    if (view.state !== 'completed') throw new Violation('liveness', `job ${jobId} ended ${view.state}: ${view.lastError}`);
    const line = view.lines.at(-1);
    if (!line) throw new Violation('§3.5 same answer', `job ${jobId} completed with no recovery line`);
    for (const u of units) {
      const where = line.unitClusters[u];
      const epoch = where === undefined ? undefined : line.clusterEpochs[where];
      if (where === undefined || epoch === undefined) throw new Violation('§3.5 same answer', `line ${line.epoch} does not place unit ${u}`);
      const r = this.env.stores.get(where)!.load(jobId, BigInt(epoch), u);
      if ('error' in r) throw new Violation('§3.5 same answer', `line ${line.epoch}: ${r.error}`);
      const want = finalState(u, this.env.opsPerUnit);
      if (!sameState(r.state, want)) {
        throw new Violation('§3.5 same answer', `unit ${u} in line ${line.epoch} is at op ${r.state.op} (${r.state.bal.join(',')}), the failure-free run ends at op ${want.op} (${want.bal.join(',')})`);
      }
      if (total(r.state) !== ACCOUNTS * OPENING) throw new Violation('§3.5 same answer', `unit ${u}'s total changed`);
    }
    this.committedIntact();
  }
}
