import { GridError } from '../common/errors.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import { listCommitted } from '../store/index.js';
import { whyNotRestorable } from '../store/restorable.js';
import { planAdoption, type ForeignEpochLayout } from './core/adoption.js';
import { moveFailedNode, placeUnits, type NodeCapacity } from './core/placement.js';
import type { AdoptedParts, ClusterJob, ClusterJobState } from './cluster-job.js';
import type { ClusterCoordinator } from './coordinator.js';

// Restarting a job on nodes from what they hold (node recovery), and the
// cluster's side of a grid recovery: stop the job here, roll this cluster's
// own units back to the grid's recovery line, adopt the units of a lost
// cluster with their pages read from its store, and restart everything.

export interface GridRestore {
  jobId: string;
  gridIncarnation: bigint;
  /** The job's units in this cluster from now on. */
  spec: JobSpec;
  /** This cluster's epoch on the recovery line; null starts its own units anew. */
  epoch: bigint | null;
  adopt: Array<{ fromCluster: string; storeDir: string; epoch: bigint | null; unitIds: string[] }>;
}

/** Restore where a node holds pages, start anew where it holds none. */
export async function restoreJobOnNodes(c: ClusterCoordinator, job: ClusterJob, nodes: readonly string[]): Promise<void> {
  for (const nodeId of nodes) await restoreNode(c, job, nodeId);
}

/** One node: its units from what it holds (sourcesFor), or anew. */
export async function restoreNode(c: ClusterCoordinator, job: ClusterJob, nodeId: string): Promise<void> {
  const spec = job.specFor(nodeId);
  const sources = job.sourcesFor(nodeId);
  const agent = c.client(nodeId);
  // Named before it is sent: from now on only reports on this start count (core/job-end.ts, E1).
  const gen = c.nextStartGen();
  job.startGens.set(nodeId, gen);
  try {
    if (sources.length === 0) {
      await agent.stopJob({ jobId: job.jobId }).catch(() => undefined);
      await agent.startJob({ job: spec, leaseBound: true, fresh: true, gen });
    } else {
      await agent.restore({
        jobId: job.jobId, epoch: 0n, partsFrom: [], job: spec, leaseBound: true, gen,
        sources: sources.map((s) => ({ storeDir: s.storeDir, epoch: s.epoch, partsFrom: s.parts })),
      });
    }
  } finally {
    // Granted even if the call failed: the agent may have bound a lease before it did. It refuses a
    // start that reaches its core after the call's deadline, so any lease it bound began before now.
    c.granted(nodeId);
  }
}

async function readLayout(storeDir: string, jobId: string, epoch: bigint): Promise<ForeignEpochLayout> {
  const m = (await listCommitted(storeDir, jobId)).find((x) => x.epoch === epoch);
  if (!m) throw new GridError('not-found', `job ${jobId} has no committed epoch ${epoch} in ${storeDir}`);
  const { placement, partOwners } = m.layout;
  if (Object.keys(placement).length === 0) throw new GridError('failed-precondition', `epoch ${epoch} of job ${jobId} in ${storeDir} records no placement`);
  return { placement, partOwners };
}

export async function restoreGridJob(c: ClusterCoordinator, r: GridRestore): Promise<ClusterJob> {
  const t0 = c.runtime.clock.nowMs();
  const clusterId = c.settings.clusterId;
  const old = c.jobs.get(r.jobId) ?? null;
  if (old?.state === 'recovering') {
    throw new GridError('unavailable', `job ${r.jobId} is recovering from a node failure in cluster ${clusterId}; try again`);
  }
  // A suspected node may still run its units; wait for the verdict (the grid retries).
  const doubtful = old ? old.nodes().filter((n) => c.nodes.get(n)?.verdict === 'suspected') : [];
  if (doubtful.length > 0) throw new GridError('unavailable', `node ${doubtful.join(', ')} of job ${r.jobId} is suspected in cluster ${clusterId}; try again`);
  old?.checkGridFence(r.gridIncarnation);
  const unitIds = new Set(r.spec.units.map((u) => u.unitId));
  const adoptedIds = new Set(r.adopt.flatMap((a) => a.unitIds));
  for (const u of adoptedIds) if (!unitIds.has(u)) throw new GridError('invalid-argument', `adopted unit ${u} is not in the job's units for ${clusterId}`);
  const ownIds = [...unitIds].filter((u) => !adoptedIds.has(u));
  // Every epoch it would load must verify, before anything is stopped: if not, the grid walks back to an older line.
  await checkGridSources(c.settings.storeDir, r);

  c.events.recoveryStarted?.(r.jobId, 'grid', `the grid restores the job here (epoch ${r.epoch ?? 'none'}, ${r.adopt.length} adoptions)`);
  // 1. Nothing of the job runs here any more; the old record does nothing more from now on.
  if (old) {
    old.replaced = true;
    c.disarm(old);
    old.stop();
    await old.whenIdle();
    await c.stopOn(r.jobId, old.nodes());
  }
  // The old record no longer counts against any node's room (it is replaced).
  const free: NodeCapacity[] = c.capacities();
  const take = (placed: ReadonlyMap<string, string>) => {
    const more = count(placed.values());
    for (const n of free) n.placedUnits += more.get(n.nodeId) ?? 0;
  };

  // 2. This cluster's own units: where they run and which parts they load.
  let placement = new Map<string, string>();
  let partOwners = new Map<string, string>();
  let relaid = false;
  const alive = new Set(free.map((n) => n.nodeId));
  const placedAlive = old !== null && ownIds.every((u) => old.placement.has(u) && alive.has(old.placement.get(u)!));
  if (r.epoch !== null && old && old.lastEpoch === r.epoch && old.adopted.length === 0 && placedAlive) {
    // Rolling back to the epoch the record stands at: its placement and holders are that epoch's.
    for (const u of ownIds) placement.set(u, old.placement.get(u)!);
    partOwners = new Map(old.partOwners);
    take(placement);
  } else if (r.epoch !== null) {
    // Otherwise the epoch's own manifest says who holds whose parts; units go back home where they can.
    const plan = planAdoption(ownIds, await readLayout(c.settings.storeDir, r.jobId, r.epoch), free, true);
    placement = plan.placement;
    partOwners = plan.holders;
    relaid = true;
    take(placement);
  } else {
    placement = placeUnits(ownIds, free);
    take(placement);
  }

  // 3. The adopted units, with their pages still in the lost cluster's store.
  const adopted: AdoptedParts[] = [];
  for (const a of r.adopt) {
    const layout = a.epoch === null ? null : await readLayout(a.storeDir, r.jobId, a.epoch);
    const plan = planAdoption(a.unitIds, layout, free);
    take(plan.placement);
    for (const [u, n] of plan.placement) placement.set(u, n);
    if (a.epoch !== null) adopted.push({ fromCluster: a.fromCluster, storeDir: a.storeDir, epoch: a.epoch, holders: plan.holders });
  }

  // 4. The job's new record, and its restart.
  const job = c.newJob({ ...r.spec, checkpointIntervalMs: 0 }, placement, true);
  for (const n of job.nodes()) if (!partOwners.has(n)) partOwners.set(n, n);
  job.partOwners = partOwners;
  job.adopted = adopted;
  job.needsFull = relaid || adopted.length > 0;
  job.lastEpoch = r.epoch;
  // The job's history in this store: what the old record built up to the line, and the line.
  if (r.epoch !== null) for (const e of [...(old?.committedHere ?? []), r.epoch]) if (e <= r.epoch) job.committedHere.add(e);
  job.recoveries = (old?.recoveries ?? 0) + 1;
  job.checkGridFence(r.gridIncarnation);
  job.state = 'recovering';
  c.setJob(job);
  c.gridLeases.bind(r.jobId);
  try {
    await restoreJobOnNodes(c, job, job.nodes());
    const now = job.state as ClusterJobState;
    if (now !== 'recovering' || c.jobs.get(r.jobId) !== job) {
      // Fenced (the grid's lease lapsed) or replaced while restoring: nothing it started may run on.
      await c.stopOn(r.jobId, job.nodes());
      throw new GridError('aborted', `job ${r.jobId} was ${now === 'fenced' ? 'fenced' : 'replaced'} while it was being restored`);
    }
  } catch (err) {
    if ((job.state as ClusterJobState) !== 'fenced') job.state = 'failed';
    job.lastError = `grid restore failed: ${err instanceof Error ? err.message : String(err)}`;
    c.persist(job);
    c.log.error({ jobId: r.jobId, err: job.lastError }, 'grid restore failed');
    c.events.recovered(r.jobId, c.runtime.clock.nowMs() - t0, false);
    throw err;
  }
  job.state = 'running';
  c.arm(job);
  c.persist(job);
  const ms = c.runtime.clock.nowMs() - t0;
  c.log.warn({
    jobId: r.jobId, epoch: r.epoch === null ? 'none' : String(r.epoch), placement: Object.fromEntries(placement),
    adopted: r.adopt.map((a) => ({ from: a.fromCluster, epoch: a.epoch === null ? 'none' : String(a.epoch), units: a.unitIds })), ms,
  }, 'job restored for the grid');
  c.events.recovered(r.jobId, ms, true);
  return job;
}

/** data-loss naming the store and epoch that does not restore (the grid passes the line over). */
async function checkGridSources(ownStore: string, r: GridRestore): Promise<void> {
  const sources = [
    ...(r.epoch === null ? [] : [{ what: 'this cluster\'s store', storeDir: ownStore, epoch: r.epoch }]),
    ...r.adopt.flatMap((a) => (a.epoch === null ? [] : [{ what: `the store of ${a.fromCluster}`, storeDir: a.storeDir, epoch: a.epoch }])),
  ];
  for (const s of sources) {
    const why = await whyNotRestorable(s.storeDir, r.jobId, s.epoch);
    if (why !== null) throw new GridError('data-loss', `epoch ${s.epoch} of job ${r.jobId} in ${s.what} (${s.storeDir}) does not restore: ${why}`);
  }
}

function count(values: Iterable<string>): Map<string, number> {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return m;
}
