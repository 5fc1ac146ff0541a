import { DEFAULT_ROUND_CONFIG } from '../protocol/core/round.js';
import { scaleDetectorConfig } from '../detector/config.js';
import { Checkers, Violation } from './checkers.js';
import { drawFaults, type Fault, type FaultShape } from './faults.js';
import { SimCluster } from './cluster-member.js';
import { SimAgent, SimGrid, type SimEnv } from './members.js';
import { SimNet } from './net.js';
import { SimStore, type DiskFaults, type GridDisk } from './store.js';
import { World } from './world.js';
import { SimEtcd } from './etcd-model.js';
import { SeededRng } from '../runtime/rng.js';
import { drawOperatorActions, runOperatorAction, type OperatorEnv } from './operator.js';
import type { UnitCopy } from './units.js';

// One seeded run of a whole grid: 1 grid, 3 clusters x 3 agents, the bank
// job's 6 units spread over the clusters and, in each cluster, a local job
// of its own (submitted by a local client, no grid), a fault schedule drawn
// from the seed, the checkers after every event, and at the end the bank
// job's last line and each local job's last epoch against a failure-free
// run. Same seed, same trace, byte for byte.

export interface SimOptions {
  seed: number;
  mutants?: ReadonlySet<string>;
  /** A named scenario's fault shape; default: any kinds, 1 to 4 faults. */
  faults?: FaultShape;
  /** Keep the event trace (for replay and for --seed). */
  trace?: boolean;
  /** Three grid coordinators electing a leader through the simulated etcd (docs/grid-ha.md); also faults.ha. */
  ha?: boolean;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  violation: string | null;
  events: number;
  simMs: number;
  faults: Fault[];
  faultCounts: Record<string, number>;
  trace: string[];
}

export const SIM = {
  clusters: 3,
  agentsPerCluster: 3,
  // Room for a cluster's local job beside its share of the bank job, even on the one node left by a pair crash.
  capacityUnits: 6,
  units: 6,
  /** Each cluster's local job is `${localJob}-${cluster}` (distinct ids: the one-owner check looks at every agent's copies of a job). */
  localJob: 'solo',
  localUnits: 2,
  localIntervalMs: 150,
  localFullEvery: 4,
  /** Retention in every cluster: small, so that garbage collection runs often within a seed. */
  keepLast: 2,
  /** A grid job's chain bound in the clusters (compaction), short for the same reason. */
  maxChainEpochs: 3,
  opsPerUnit: 100,
  opIntervalMs: 10,
  heartbeatIntervalMs: 50,
  agentLeaseMs: 500,
  clusterLeaseMs: 1000,
  checkpointIntervalMs: 150,
  freezeTimeoutMs: 100,
  rpcTimeoutMs: 200,
  untilMs: 60_000,
  /** With --ha: the grids' etcd lease, its keepalive period and the leaders' margin for clock rates. */
  leaderLeaseMs: 300,
  leaderKeepAliveMs: 100,
  leaderMarginMs: 20,
};

export function localJobOf(cluster: string): string {
  return `${SIM.localJob}-${cluster}`;
}

export function runSeed(o: SimOptions): SimResult {
  const world = new World(o.seed);
  const rng = world.rng.fork();
  const netRng = world.rng.fork();
  const mutants = o.mutants ?? new Set<string>();
  const trace: string[] = [];
  const log = (line: string): void => { if (o.trace) trace.push(`${String(world.nowMs).padStart(6)} ${line}`); };
  const disk: DiskFaults = { failNext: new Map(), crashAtNextWrite: new Map(), lostWrites: 0, failedWrites: 0 };
  const stores = new Map<string, SimStore>();
  const gridDisk: GridDisk = { catalog: [], forgotten: {} };
  const agents = new Map<string, SimAgent>();
  const clusters = new Map<string, SimCluster>();
  const net = new SimNet(world, netRng, { minDelayMs: 1, maxDelayMs: 4, rpcTimeoutMs: SIM.rpcTimeoutMs });
  let copyIds = 0;
  const ha = o.ha ?? o.faults?.ha ?? false;
  const grids: SimGrid[] = [];
  let grid: SimGrid | null = null;
  const etcd = ha ? new SimEtcd(world, SIM.leaderLeaseMs) : null;
  /** Until when each grid's calls to clusters are held back (leader-isolated). */
  const held = new Map<string, number>();
  const catalogLines = () => (etcd ? etcd.catalog : gridDisk.catalog).flatMap((row) => row.lines.map((l) => ({ jobId: row.jobId, epoch: l.epoch, clusterEpochs: l.clusterEpochs })));
  const checkers = new Checkers({ keepLast: SIM.keepLast, catalogLines, agents, clusters, grid: () => grid!, grids, stores, freezeTimeoutMs: SIM.freezeTimeoutMs, opsPerUnit: SIM.opsPerUnit, nowMs: () => world.nowMs });
  const env: SimEnv = {
    world, net, disk, stores, gridDisk, agents, clusters, grid: () => grid!, grids, mutants,
    afterStep: (m) => checkers.core(m),
    onClusterEvents: (c, events) => checkers.clusterEvents(c, events, o.trace ? log : null),
    onGridSend: (to, call) => { if (call.req.kind === 'prepare') checkers.gridPrepare(to, call.req.jobId, call.req.epoch); },
    onGridCallIn: (c, call) => checkers.gridCallIn(c, call),
    onGridBeatAnswered: (c, answer) => checkers.gridBeatAnswered(c, answer),
    onClusterSend: (c, to, call) => { if (call.req.kind === 'prepare') checkers.clusterPrepare(c, to, call.req.jobId, call.req.epoch); },
    beforeOp: (c: UnitCopy) => checkers.beforeOp(c),
    beforeRetire: (s, jobId, epoch) => checkers.beforeRetire(s, jobId, epoch),
    retention: { keepLast: SIM.keepLast, keepForMs: 0 },
    opsPerUnit: SIM.opsPerUnit, opIntervalMs: SIM.opIntervalMs, nextCopyId: () => ++copyIds, tracing: o.trace ?? false, trace: log,
  };
  // The old detector took its own pauses for its peers' silence (the mutant turns the check off).
  const scaled = scaleDetectorConfig(SIM.heartbeatIntervalMs);
  const detector = mutants.has('blame-own-pause') ? { ...scaled, selfTickMs: 0, selfPauseMs: 0 } : scaled;
  const round = { ...DEFAULT_ROUND_CONFIG, prepareTimeoutMs: 300, holdTimeoutMs: 600, commitTimeoutMs: 400, manifestTimeoutMs: 300, abortTimeoutMs: 100 };
  const topo = { clusters: [] as string[], agents: new Map<string, string[]>() };
  for (let c = 1; c <= SIM.clusters; c++) {
    const cid = `c${c}`;
    topo.clusters.push(cid);
    stores.set(cid, new SimStore(cid));
    clusters.set(cid, new SimCluster(cid, {
      heartbeatIntervalMs: SIM.heartbeatIntervalMs, detector, round, agentLeaseMs: SIM.agentLeaseMs, gridLeaseMs: SIM.clusterLeaseMs, callTimeoutMs: SIM.rpcTimeoutMs,
      maxRecoveryAttempts: 20, maxFinalAttempts: 20, keepEpochs: 16, maxJobs: 16, resumeWaitMs: 3 * SIM.agentLeaseMs,
      maxChainEpochs: SIM.maxChainEpochs,
    }, env));
    const ids: string[] = [];
    for (let n = 1; n <= SIM.agentsPerCluster; n++) {
      const id = `${cid}n${n}`;
      ids.push(id);
      agents.set(id, new SimAgent(id, cid, { capacityUnits: SIM.capacityUnits, heartbeatIntervalMs: SIM.heartbeatIntervalMs, freezeTimeoutMs: SIM.freezeTimeoutMs, maxJobs: 16, defaultFullEvery: 8 }, env));
    }
    topo.agents.set(cid, ids);
  }
  const gridConfig = {
    gridId: 'grid', detector, round, checkpointIntervalMs: SIM.checkpointIntervalMs, callTimeoutMs: SIM.rpcTimeoutMs, clusterLeaseMs: SIM.clusterLeaseMs, agentLeaseMs: SIM.agentLeaseMs,
    maxRecoveryAttempts: 20, maxFinalAttempts: 20, retryMs: 100, maxJobs: 16,
  };
  if (etcd) {
    const haPort = {
      etcd, leadership: { leaseMs: SIM.leaderLeaseMs, marginMs: SIM.leaderMarginMs }, keepAliveMs: SIM.leaderKeepAliveMs,
      heldUntil: (id: string) => held.get(id) ?? 0,
      onLead: (g: SimGrid) => { grid = g; },
    };
    for (let i = 1; i <= 3; i++) grids.push(new SimGrid(gridConfig, env, `grid${i}`, haPort));
  } else {
    grids.push(new SimGrid(gridConfig, env));
  }
  grid = grids[0]!;

  for (const c of clusters.values()) c.start();
  for (const a of agents.values()) a.start();
  for (const g of grids) g.start();
  const units = Array.from({ length: SIM.units }, (_, i) => `u${i}`);
  // The job is submitted to whichever grid leads (with --ha, again until one took it: the first may not lead yet).
  const submit = (): void => {
    const g = grids.find((x) => x.proc.alive && x.leading);
    if (g && g.core.jobState('bank') === null) g.driver.input({ kind: 'submit', reqId: 1, jobId: 'bank', units });
    // With --ha the clusters may not have found the leader yet (a refused submit is submitted again).
    if (etcd && grid?.core?.jobState('bank') == null) world.after(100, submit);
  };
  world.at(150, submit);
  const localUnits = Array.from({ length: SIM.localUnits }, (_, i) => `s${i}`);
  // Each cluster's local client submits its job, again while no answer took it (a crash may lose the call), and asks one checkpoint.
  const accepted = new Set<string>();
  const submitLocal = (c: SimCluster): void => {
    if (accepted.has(c.id)) return;
    if (c.proc.alive) {
      c.localCall({ kind: 'submitJob', jobId: localJobOf(c.id), units: localUnits, intervalMs: SIM.localIntervalMs, fullEvery: SIM.localFullEvery }, (a) => {
        if (a.kind === 'ok' || (a.kind === 'refused' && a.code === 'already-exists')) accepted.add(c.id);
      });
    }
    world.after(500, () => submitLocal(c));
  };
  for (const c of clusters.values()) {
    world.at(150, () => submitLocal(c));
    world.at(700, () => { if (c.proc.alive) c.localCall({ kind: 'checkpoint', jobId: localJobOf(c.id) }, () => undefined); });
  }

  // Faults fall while the job runs (a failure-free run ends at about 1.3 s).
  const faults = drawFaults(rng, topo, { fromMs: 250, toMs: 1250 }, ha ? { ...o.faults, ha } : o.faults);
  const counts: Record<string, number> = {};
  // An operator's job control among them: in plain runs, and in scenarios that ask for it. Its own generator, so that
  // the faults (and every mutant's committed regression seeds) are drawn as before.
  const operatorShape = o.faults?.operator;
  const operatorRng = new SeededRng((o.seed ^ 0x6f70) >>> 0);
  const operatorActions = operatorShape ? drawOperatorActions(operatorRng, topo.clusters, { fromMs: 250, toMs: 1250 }, operatorShape, 1 + operatorRng.int(2))
    : o.faults === undefined && mutants.size === 0 ? drawOperatorActions(operatorRng, topo.clusters, { fromMs: 250, toMs: 1250 }) : [];
  const opEnv: OperatorEnv = {
    // With --ha the operator asks whichever grid leads (a standby's answer is UNAVAILABLE: resent later).
    world, grid: () => grids.find((g) => g.proc.alive && g.leading) ?? grid!, clusters, bankUnits: units, localJob: localJobOf,
    localSubmit: (c) => ({ kind: 'submitJob', jobId: localJobOf(c), units: localUnits, intervalMs: SIM.localIntervalMs, fullEvery: SIM.localFullEvery }),
    cancelled: (target, jobId, confirmed) => checkers.cancelAnswered(target, jobId, confirmed),
    log,
  };
  for (const a of operatorActions) {
    counts[`operator-${a.kind}`] = (counts[`operator-${a.kind}`] ?? 0) + 1;
    runOperatorAction(opEnv, a);
  }
  const pauseEnds = new Map<string, number>();
  for (const f of faults) world.at(f.atMs, () => inject(f));

  function member(id: string): SimAgent | SimCluster | SimGrid | undefined {
    // With --ha a grid fault hits whichever grid leads when it falls.
    return id === 'grid' ? grids.find((g) => g.proc.alive && g.leading) ?? grid! : clusters.get(id) ?? agents.get(id);
  }

  function inject(f: Fault): void {
    counts[f.kind] = (counts[f.kind] ?? 0) + 1;
    log(`FAULT ${f.kind} ${f.target} ${f.durationMs}ms`);
    const m = member(f.target)!;
    switch (f.kind) {
      case 'agent-crash-pair': {
        // Two nodes of one cluster lost at once: both unit holders when the job has two there.
        const cid = agents.get(f.target)!.clusterId;
        const view = clusters.get(cid)!.core.jobView('bank');
        const holders = view ? [...new Set(view.placement.values())].sort() : [];
        const pair = holders.length >= 2 ? holders.slice(0, 2) : [f.target, ...topo.agents.get(cid)!.filter((a) => a !== f.target).slice(0, 1)];
        // The second dies with the first, or ~0.5 s later: dead but not yet declared when the first one's units are restored.
        const gapMs = f.count === 1 ? 0 : 300 + f.count * 100;
        pair.forEach((id, i) => world.after(i * gapMs, () => {
          const a = agents.get(id)!;
          if (!a.proc.alive) return;
          log(`CRASH ${id}`);
          a.crash();
          world.after(f.durationMs + 1500, () => { log(`RESTART ${id}`); a.start(); });
        }));
        return;
      }
      case 'leader-isolated': {
        // From now on the leader's calls are held back (a slow link); two rounds' periods later it is cut from etcd, long
        // enough for a standby to take over; what it sent meanwhile arrives only after that (a deposed leader's late calls).
        const g = m as SimGrid;
        const cutMs = Math.max(f.durationMs, 3 * SIM.leaderLeaseMs);
        const holdMs = 2 * SIM.checkpointIntervalMs + 50;
        held.set(g.id, world.nowMs + holdMs + 2 * SIM.leaderLeaseMs + 250);
        world.after(holdMs, () => { log(`CUT ${g.id}-etcd`); net.cut(g.id, 'etcd'); });
        world.after(holdMs + cutMs, () => { log(`HEAL ${g.id}-etcd`); net.heal(g.id, 'etcd'); });
        return;
      }
      case 'agent-crash': case 'cluster-crash': case 'grid-crash': case 'leader-crash': {
        const crash = (): void => {
          if (!m.proc.alive) return;
          log(`CRASH ${f.target}`);
          m.crash();
          world.after(f.durationMs, () => { log(`RESTART ${f.target}`); m.start(); });
        };
        // Every other crash waits for the member's next write, which it then loses (unsynced), or 300 ms.
        if (f.count % 2 === 0) {
          disk.crashAtNextWrite.set(f.target, crash);
          world.after(300, () => { if (disk.crashAtNextWrite.delete(f.target)) crash(); });
        } else {
          crash();
        }
        return;
      }
      case 'partition-agent': case 'partition-cluster': {
        const other = f.kind === 'partition-agent' ? agents.get(f.target)!.clusterId : 'grid';
        net.cut(f.target, other);
        world.after(f.durationMs, () => { log(`HEAL ${f.target}-${other}`); net.heal(f.target, other); });
        return;
      }
      case 'pause-agent': case 'pause-cluster': case 'pause-grid':
        m.proc.pausedUntilMs = Math.max(m.proc.pausedUntilMs, world.nowMs + f.durationMs);
        pauseEnds.set(f.target, m.proc.pausedUntilMs);
        return;
      case 'enospc': case 'eio':
        disk.failNext.set(f.target, { error: f.kind === 'enospc' ? 'ENOSPC: no space left on device' : 'EIO: i/o error', count: f.count });
        return;
      case 'corrupt-newest': {
        // A flipped byte in the newest epoch, found by the restore of a node recovery (the agent holding most units dies).
        const newest = stores.get(f.target)!.newest('bank');
        if (newest) for (const p of newest.parts.slice(0, 1)) {
          const part = stores.get(f.target)!.parts.get(SimStore.partKey('bank', newest.epoch, p.writer));
          if (part && part.units.size > 0) part.damaged = true;
        }
        const holder = clusters.get(f.target)!.core.jobView('bank');
        const victim = holder ? [...holder.placement.values()].sort()[0] : undefined;
        if (victim && agents.get(victim)!.proc.alive) {
          agents.get(victim)!.crash();
          world.after(f.durationMs, () => agents.get(victim)!.start());
        }
        return;
      }
    }
  }

  let violation: string | null = null;
  const ended = (state: string | null): boolean => state === 'completed' || state === 'failed';
  const done = (): boolean => {
    if (violation !== null) return true;
    // Held-back calls are delivered and answered before the run ends (the checkers judge how they were taken).
    for (const until of held.values()) if (world.nowMs < until + SIM.rpcTimeoutMs) return false;
    if (!ended(grid!.proc.alive && grid!.leading ? grid!.core.jobState('bank') : null)) return false;
    return [...clusters.values()].every((c) => c.proc.alive && ended(c.core.jobState(localJobOf(c.id))));
  };
  try {
    world.run(SIM.untilMs, done, () => {
      checkers.alwaysThaw(pauseEnds);
      checkers.oneLeader();
      checkers.storesAndEpochs();
    });
    checkers.final('bank', units);
    for (const c of clusters.keys()) checkers.finalLocal(c, localJobOf(c), localUnits);
  } catch (err) {
    // A bug crashes loudly (CONVENTIONS §5): any throw from a core or a driver fails the seed.
    violation = err instanceof Violation ? err.message : `crash: ${err instanceof Error ? err.stack ?? err.message : String(err)}`;
  }
  if (disk.lostWrites > 0) counts['lost-unsynced-write'] = disk.lostWrites;
  if (disk.failedWrites > 0) counts['failed-write'] = disk.failedWrites;
  log(violation === null ? 'OK' : `VIOLATION ${violation}`);
  return { seed: o.seed, ok: violation === null, violation, events: world.events, simMs: world.nowMs, faults, faultCounts: counts, trace };
}
