import { status as grpcStatus } from '@grpc/grpc-js';
import type { Logger } from '../common/log.js';
import type { TierRuntime } from '../wire/clients.js';
import { MEMBERSHIP_CHANNEL_OPTIONS } from '../common/grpc-call.js';
import { failpoint } from '../common/failpoints.js';
import type { Heartbeat, HeartbeatAnswer } from '../protocol/messages.js';
import type { GridBeat } from './shell.js';

// The cluster coordinator's tie to the grid coordinator: the core's own
// heartbeats to the grid (its shares' states with their gens, its free room:
// push, not poll) go out as ClusterHeartbeat, and each answer goes back to
// the core (it renews the grid's lease on the jobs it names, from the beat's
// send). A beat needs this incarnation registered first (RegisterCluster:
// address, store, agent lease; the grid answers with the beat interval its
// detector expects, which each answer carries to the core); an answer
// known:false — the grid restarted or
// declared this cluster failed — makes the next beat register again. A beat
// that gets no answer is the grid detector's business: none goes to the core.

export interface GridLinkOptions {
  /** One grid coordinator, or several of which one leads (docs/grid-ha.md): the link goes on to the next when one fails or is a standby. */
  gridAddresses: string[];
  clusterId: string;
  incarnation: bigint;
  clusterAddress: string;
  storeDir: string;
  agentLeaseMs: number;
  /** A beat's deadline: a few of the core's heartbeat intervals. */
  beatTimeoutMs: number;
  log: Logger;
  runtime: TierRuntime;
}

export interface GridLink {
  beat: GridBeat;
  stop(): void;
}

export function linkToGrid(o: GridLinkOptions): GridLink {
  if (o.gridAddresses.length === 0) throw new Error('linkToGrid: no grid address');
  const clients = o.gridAddresses.map((a) => o.runtime.clients.gridClient(a, 2_000, MEMBERSHIP_CHANNEL_OPTIONS));
  /** The grid coordinator this cluster talks to now (of several: the leader, once found). */
  let at = 0;
  let client = clients[0]!;
  /** Of several: the next address after a failure at `failedAt` (a standby's UNAVAILABLE names the leader: that one). */
  const next = (failedAt: number, err: unknown): void => {
    if (clients.length < 2 || failedAt !== at) return;
    const hint = /the leader is at (\S+) \(term/.exec((err as { details?: string }).details ?? '')?.[1];
    const to = hint !== undefined && o.gridAddresses.includes(hint) ? o.gridAddresses.indexOf(hint) : (at + 1) % clients.length;
    o.log.info({ from: o.gridAddresses[at], to: o.gridAddresses[to], err: String(err) }, 'trying another grid coordinator');
    at = to;
    client = clients[to]!;
    registered = false;
    failedBeats = 0;
  };
  let registered = false;
  /** Beats in a row that got no answer from the grid talked to now (of several, two move on: a paused leader answers none). */
  let failedBeats = 0;
  /** The beat interval the grid's registration asked for (0: none said). */
  let intervalMs = 0;
  let registering: Promise<boolean> | null = null;
  let stopped = false;

  const register = (): Promise<boolean> => {
    registering ??= (async () => {
      const tried = at;
      try {
        failpoint('cluster.grid-link'); // a test's partition between this cluster and the grid
        const r = await client.registerCluster({
          clusterId: o.clusterId, incarnation: o.incarnation, address: o.clusterAddress, storeDir: o.storeDir, agentLeaseMs: o.agentLeaseMs,
        });
        if (!registered) o.log.info({ grid: r.gridId, leaseMs: r.leaseMs, heartbeatIntervalMs: r.heartbeatIntervalMs }, 'registered with the grid');
        intervalMs = r.heartbeatIntervalMs;
        registered = true;
      } catch (err) {
        o.log.debug({ err: String(err) }, 'grid not reachable; registering again at the next beat');
        next(tried, err);
      } finally {
        registering = null;
      }
      return registered;
    })();
    return registering;
  };

  const beat = async (hb: Heartbeat): Promise<HeartbeatAnswer | null> => {
    if (stopped) return null;
    if (!registered && !(await register())) return null;
    const tried = at;
    try {
      failpoint('cluster.grid-link');
      const a = await client.clusterHeartbeat({
        clusterId: o.clusterId, incarnation: o.incarnation, seq: BigInt(hb.seq),
        jobs: hb.jobs.map((j) => ({ jobId: j.jobId, state: j.state, gen: BigInt(j.gen) })), freeUnits: hb.freeUnits,
      }, o.beatTimeoutMs);
      failedBeats = 0;
      if (!a.known) {
        if (registered) o.log.warn({}, 'the grid does not know this cluster: registering again');
        registered = false;
      }
      return { known: a.known, leasedJobs: a.leasedJobs, leaseMs: a.leaseMs, fence: { term: a.leaderTerm, incarnation: a.incarnation }, ...(intervalMs > 0 ? { intervalMs } : {}) };
    } catch (err) {
      // A dead or deposed grid: of several, the next (one late beat of a live leader costs a registration, no more).
      failedBeats += 1;
      if ((err as { code?: number }).code === grpcStatus.UNAVAILABLE || failedBeats >= 2) next(tried, err);
      return null;
    }
  };

  return {
    beat,
    stop() {
      stopped = true;
      for (const c of clients) c.close();
    },
  };
}
