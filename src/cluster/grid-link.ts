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
  gridAddress: string;
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
  const client = o.runtime.clients.gridClient(o.gridAddress, 2_000, MEMBERSHIP_CHANNEL_OPTIONS);
  let registered = false;
  /** The beat interval the grid's registration asked for (0: none said). */
  let intervalMs = 0;
  let registering: Promise<boolean> | null = null;
  let stopped = false;

  const register = (): Promise<boolean> => {
    registering ??= (async () => {
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
    try {
      failpoint('cluster.grid-link');
      const a = await client.clusterHeartbeat({
        clusterId: o.clusterId, incarnation: o.incarnation, seq: BigInt(hb.seq),
        jobs: hb.jobs.map((j) => ({ jobId: j.jobId, state: j.state, gen: BigInt(j.gen) })), freeUnits: hb.freeUnits,
      }, o.beatTimeoutMs);
      if (!a.known) {
        if (registered) o.log.warn({}, 'the grid does not know this cluster: registering again');
        registered = false;
      }
      return { known: a.known, leasedJobs: a.leasedJobs, leaseMs: a.leaseMs, ...(intervalMs > 0 ? { intervalMs } : {}) };
    } catch {
      return null;
    }
  };

  return {
    beat,
    stop() {
      stopped = true;
      client.close();
    },
  };
}
