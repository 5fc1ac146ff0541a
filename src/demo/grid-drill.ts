import { untilStatus } from '../wire/watch-until.js';
import type { GridClient } from '../wire/grid-client.js';
import type { ClusterClient } from '../wire/cluster-client.js';
import type { TierRuntime } from '../wire/clients.js';
import { realRuntime } from '../wire/real-clients.js';
import { clusterBankSpec } from '../bank/job.js';
import { referenceBalances, totalOf, expectedTotal, type BankParams } from '../bank/model.js';
import { balancesDigest } from '../bank/digest.js';
import { bankFromEpoch } from './bank-image.js';
import type { LocalGrid } from './local-grid.js';
import type { GridStatusResponse } from '../gen/gridckpt/v1/grid.js';
import type { ClusterStatusResponse } from '../gen/gridckpt/v1/cluster.js';

// The grid failure drill behind `gridckpt up --demo`: the bank job spread
// over every cluster, checkpointed by coordinated grid rounds; mid-run, one
// node agent holding units is killed with kill -9 (its cluster detects it,
// moves its units to a spare node and restores) — or, with failure
// 'cluster', a whole cluster coordinator is (the grid detects it, waits out
// its leases, moves its units to another cluster and rolls the job back to
// its last recovery line) — or, with failure 'grid' (grid coordinators
// elected through etcd), the leading grid coordinator is (a standby takes
// over within two etcd leases and drives the job on); the job ends and its
// result is compared with a failure-free run.

export type DrillFailure = 'node' | 'cluster' | 'grid';

/** The grid coordinators' etcd lease (gridckpt grid's --etcd-lease-ms default). */
const GRID_LEASE_MS = 3_000;

export interface GridDrillReport {
  digest: string;
  expectedDigest: string;
  epochsCommitted: number;
  failuresInjected: number;
  recoveries: number;
  /** For 'grid': from the kill to the new leader leading. */
  detectionMs: number;
  recoveryMs: number;
  /** For 'grid': the etcd lease (the takeover is bounded by two of them). */
  leaseMs: number;
  failure: DrillFailure;
  /** The node (or cluster) killed. */
  killed: string;
  killedNode: string;
  invariantHeld: boolean;
  /** Every link (and the drill's own calls) ran over mutual TLS. */
  tls: boolean;
  ok: boolean;
}

const JOB = 'bank';

export async function runGridDrill(g: LocalGrid, params: BankParams, say: (t: string) => void, failure: DrillFailure = 'node'): Promise<GridDrillReport> {
  // The drill is an operator of the grid it runs.
  const rt = realRuntime(g.operator);
  let grid = await leaderClient(rt, g);
  const clusters = new Map(g.clusters.map((c) => [c.clusterId, rt.clients.clusterClient(c.proc.ready.grpc)]));
  try {
    await untilStatus(rt, grid, (s) => s.clusters.filter((c) => c.verdict === 'alive').length === g.clusters.length, 'every cluster', 30_000);
    for (const c of g.clusters) {
      await untilStatus(rt, clusters.get(c.clusterId)!, (s) => s.nodes.filter((n) => n.verdict === 'alive').length === c.agents.length, `the nodes of ${c.clusterId}`, 30_000);
    }
    const submitted = await grid.submitGridJob({ job: clusterBankSpec(JOB, params, 0) });
    const unitCluster = submitted.job!.clusters;
    say(`bank job: ${params.units} units × ${params.opsPerUnit} transfers, spread ${Object.entries(unitCluster).map(([u, c]) => `${u}@${c}`).join(' ')}`);
    await untilStatus(rt, grid, (s) => (jobOf(s)?.lines.length ?? 0) >= 2, 'two grid recovery lines', 60_000);

    const victimCluster = g.clusters.find((c) => Object.values(unitCluster).includes(c.clusterId))!;
    let injected: Injected;
    if (failure === 'grid') {
      const taken = await killLeader(rt, g, grid, say);
      grid.close();
      grid = taken.client;
      injected = taken;
    } else {
      injected = failure === 'node'
        ? await killNode(rt, victimCluster, clusters.get(victimCluster.clusterId)!, say)
        : await killCluster(rt, victimCluster, grid, say);
    }
    const { detectionMs, recoveryMs, killed } = injected;

    const done = await untilStatus(rt, grid, (s) => jobOf(s)?.state === 'completed' || jobOf(s)?.state === 'failed', 'the end of the job', 600_000);
    const job = jobOf(done)!;
    if (job.state !== 'completed') throw new Error(`the grid job ended ${job.state}: ${job.lastError}`);
    const last = job.lines[job.lines.length - 1]!;
    const balances: bigint[] = [];
    const expected: bigint[] = [];
    let invariantHeld = true;
    // Each line says which cluster's store holds each unit's pages.
    const storeOf = (line: (typeof job.lines)[number], u: string) => {
      const c = line.unitClusters[u] ?? unitCluster[u]!;
      return { store: g.clusters.find((x) => x.clusterId === c)!.storeDir, epoch: line.clusterEpochs[c]! };
    };
    for (let i = 0; i < params.units; i++) {
      const p = { ...params, units: 1, seed: params.seed + i };
      for (const line of job.lines) {
        const at = storeOf(line, `u${i}`);
        const image = await bankFromEpoch(at.store, JOB, at.epoch, p, `bank-u${i}`);
        if (totalOf(image.balances) !== expectedTotal(p)) invariantHeld = false;
      }
      const at = storeOf(last, `u${i}`);
      balances.push(...(await bankFromEpoch(at.store, JOB, at.epoch, p, `bank-u${i}`)).balances);
      expected.push(...referenceBalances(p));
    }
    let recoveries = Number(job.recoveries);
    if (failure === 'node') {
      recoveries = 0;
      for (const c of clusters.values()) recoveries += Number(jobOfCluster(await c.status().catch(() => ({ jobs: [] } as unknown as ClusterStatusResponse)))?.recoveries ?? 0n);
    }
    const digest = balancesDigest(balances);
    const expectedDigest = balancesDigest(expected);
    return {
      digest,
      expectedDigest,
      epochsCommitted: Number(job.roundsCommitted),
      failuresInjected: 1,
      recoveries,
      detectionMs: Math.round(detectionMs),
      recoveryMs: Math.round(recoveryMs),
      leaseMs: failure === 'grid' ? GRID_LEASE_MS : 0,
      failure,
      killed,
      killedNode: failure === 'node' ? killed : '',
      invariantHeld,
      tls: g.operator.kind === 'mtls',
      ok: invariantHeld && digest === expectedDigest,
    };
  } finally {
    grid.close();
    for (const c of clusters.values()) c.close();
  }
}

interface Injected {
  detectionMs: number;
  recoveryMs: number;
  killed: string;
}

/** kill -9 of a node agent holding units, and its units; its cluster recovers. */
async function killNode(rt: TierRuntime, victimCluster: LocalGrid['clusters'][number], vc: ClusterClient, say: (t: string) => void): Promise<Injected> {
  const placed = (await vc.status()).jobs.find((j) => j.jobId === JOB)!.placements;
  const victim = victimCluster.agents.find((a) => placed.some((p) => p.nodeId === a.ready.nodeId))!;
  const agent = rt.clients.agentClient(victim.ready.grpc);
  const pids = (await agent.status()).jobs.flatMap((j) => j.units.filter((u) => u.state !== 'exited').map((u) => u.pid));
  agent.close();
  const killedAt = rt.clock.nowMs();
  victim.child.kill('SIGKILL');
  for (const pid of pids) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  say(`kill -9 of node agent ${victim.ready.nodeId} in ${victimCluster.clusterId} and its ${pids.length} units`);
  await untilStatus(rt, vc, (s) => s.nodes.find((n) => n.nodeId === victim.ready.nodeId)?.verdict === 'failed', 'the failure verdict', 10_000);
  const detectionMs = rt.clock.nowMs() - killedAt;
  say(`detected as failed after ${detectionMs.toFixed(0)} ms`);
  await untilStatus(rt, vc, (s) => (jobOfCluster(s)?.recoveries ?? 0n) >= 1n && jobOfCluster(s)!.state === 'running', 'the recovery', 60_000);
  const recoveryMs = rt.clock.nowMs() - killedAt - detectionMs;
  say(`recovered on a spare node ${recoveryMs.toFixed(0)} ms after detection`);
  return { detectionMs: Math.round(detectionMs), recoveryMs: Math.round(recoveryMs), killed: victim.ready.nodeId };
}

/** kill -9 of a cluster coordinator whose agents run units; the grid recovers. */
async function killCluster(rt: TierRuntime, victim: LocalGrid['clusters'][number], grid: GridClient, say: (t: string) => void): Promise<Injected> {
  const killedAt = rt.clock.nowMs();
  victim.proc.child.kill('SIGKILL');
  say(`kill -9 of cluster coordinator ${victim.clusterId} (its agents and units run on until their leases lapse)`);
  await untilStatus(rt, grid, (s) => s.clusters.find((c) => c.clusterId === victim.clusterId)?.verdict === 'failed', 'the failure verdict', 10_000);
  const detectionMs = rt.clock.nowMs() - killedAt;
  say(`detected as failed by the grid after ${detectionMs.toFixed(0)} ms`);
  const s = await untilStatus(rt, grid, (x) => (jobOf(x)?.recoveries ?? 0n) >= 1n || jobOf(x)?.state === 'failed', 'the grid recovery', 60_000);
  if (jobOf(s)!.state === 'failed') throw new Error(`the grid could not recover the job: ${jobOf(s)!.lastError}`);
  const recoveryMs = rt.clock.nowMs() - killedAt - detectionMs;
  say(`recovered ${recoveryMs.toFixed(0)} ms after detection (lease wait included): ${jobOf(s)!.lastError}`);
  return { detectionMs: Math.round(detectionMs), recoveryMs: Math.round(recoveryMs), killed: victim.clusterId };
}

/** The grid coordinator that answers for the grid: the only one, or the leader of those elected through etcd. */
async function leaderClient(rt: TierRuntime, g: LocalGrid): Promise<GridClient> {
  if (g.grids.length === 1) return rt.clients.gridClient(g.grid.ready.grpc);
  return Promise.any(g.grids.map(async (p) => {
    const c = rt.clients.gridClient(p.ready.grpc);
    await untilStatus(rt, c, (s) => s.role === 'leader', 'a leader', 30_000).catch((err: unknown) => {
      c.close();
      throw err;
    });
    return c;
  }));
}

/** kill -9 of the leading grid coordinator; a standby takes over (etcd) and drives the job on. */
async function killLeader(rt: TierRuntime, g: LocalGrid, leader: GridClient, say: (t: string) => void): Promise<Injected & { client: GridClient }> {
  const s = await leader.status();
  const victim = g.grids.find((p) => p.ready.grpc === s.leaderAddress) ?? g.grid;
  const killedAt = rt.clock.nowMs();
  victim.child.kill('SIGKILL');
  say(`kill -9 of the leading grid coordinator at ${victim.ready.grpc} (term ${s.leaderTerm}); ${g.grids.length - 1} standbys campaign through etcd`);
  const rest: LocalGrid = { ...g, grids: g.grids.filter((p) => p !== victim) };
  const client = await leaderClient(rt, rest);
  const takeoverMs = rt.clock.nowMs() - killedAt;
  const now = await client.status();
  say(`standby at ${now.leaderAddress} leads with term ${now.leaderTerm}, ${takeoverMs.toFixed(0)} ms after the kill (etcd lease ${GRID_LEASE_MS} ms)`);
  return { detectionMs: Math.round(takeoverMs), recoveryMs: 0, killed: victim.ready.grpc, client };
}

function jobOf(s: GridStatusResponse) {
  return s.jobs.find((j) => j.jobId === JOB);
}

function jobOfCluster(s: ClusterStatusResponse) {
  return s.jobs.find((j) => j.jobId === JOB);
}
