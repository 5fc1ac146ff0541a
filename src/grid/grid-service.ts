import { isAbsolute } from 'node:path';
import type { GridServiceServer, GridJobStatus, RecoveryLine as PbLine, SubmitGridJobRequest } from '../gen/gridckpt/v1/grid.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import { jobActionFromWire } from '../wire/job-action.js';
import { unary } from '../common/grpc-status.js';
import { checkName } from '../common/names.js';
import { checkJobSpec, restartPolicyFromWire, type RestartPolicy } from '../protocol/job-spec.js';
import { checkWireEpoch } from '../protocol/bounds.js';
import { GridError } from '../common/errors.js';
import { checkHostPort } from '../common/host-port.js';
import { required } from '../wire/codec.js';
import type { MemberJobState } from '../protocol/messages.js';
import type { GridShell } from './shell.js';
import { lineOf, type RecoveryLine } from './catalog.js';
import type { EventHub } from '../runtime/event-hub.js';
import { serveWatch } from '../runtime/watch-stream.js';

// gRPC service of the grid coordinator: each request goes to the shell
// (shell.ts), which asks the core; wire -> domain and back here.

const LINES_SHOWN = 8;
/** Shares a cluster's heartbeat may report (a bound on what the network hands the core). */
const MAX_SHARES_PER_BEAT = 1_024;
const SHARE_STATES: ReadonlySet<string> = new Set(['running', 'completed', 'fenced', 'failed', 'stopped', 'unit-failed']);

function lineToPb(l: RecoveryLine): PbLine {
  return { jobId: l.jobId, gridEpoch: l.gridEpoch, clusterEpochs: { ...l.clusterEpochs }, committedUnixMs: BigInt(l.committedUnixMs), unitClusters: { ...l.unitClusters } };
}

function jobStatus(g: GridShell, jobId: string): GridJobStatus {
  const j = g.core.jobView(jobId);
  if (!j) throw new GridError('not-found', `unknown job ${JSON.stringify(jobId)} on grid ${g.settings.gridId}`);
  const lines = j.lines.map((l) => lineOf(jobId, l, g.catalog.lineTime(jobId, l.epoch)));
  return {
    jobId,
    state: j.state,
    clusters: Object.fromEntries(j.clusters),
    lastGridEpoch: lines.at(-1)?.gridEpoch ?? 0n,
    roundsCommitted: BigInt(j.roundsCommitted),
    roundsAborted: BigInt(j.roundsAborted),
    lastError: j.lastError,
    lines: lines.slice(-LINES_SHOWN).map(lineToPb),
    recoveries: BigInt(j.recoveries),
  };
}

/** At most this many units a grid job (each is a process on some node). */
const MAX_GRID_UNITS = 4_096;

/**
 * The job spec's one schema (protocol/job-spec.ts), as every tier checks it: a spec a cluster's agents would
 * refuse is refused here, naming the field, not accepted and failed later on every cluster.
 */
/** The spec and its restart policy, checked with the schema every tier shares (protocol/job-spec.ts). */
function checkGridSpec(spec: JobSpec, policy: SubmitGridJobRequest['restartPolicy']): { spec: JobSpec; restartPolicy: RestartPolicy | null } {
  const checked = checkJobSpec({ ...spec, restartPolicy: restartPolicyFromWire(policy) }, { maxUnits: MAX_GRID_UNITS });
  return { spec, restartPolicy: checked.restartPolicy ?? null };
}

/** An agent lease longer than an hour is a misconfiguration, not a lease (a lost cluster's units would wait that long). */
const MAX_AGENT_LEASE_MS = 3_600_000;

/**
 * Who answers in this process: the shell while it decides (a lone grid, or the leader of grids elected through
 * etcd, docs/grid-ha.md); a standby has none and answers UNAVAILABLE naming the leader, so that a cluster or a
 * client goes on to the next address it knows.
 */
export interface GridRole {
  gridId: string;
  incarnation: bigint;
  shell(): GridShell | null;
  view(): { role: 'single' | 'leader' | 'standby'; leaderTerm: bigint; leaderAddress: string };
}

/** The role of a grid without etcd: its one shell, always. */
export function singleRole(g: GridShell): GridRole {
  return { gridId: g.settings.gridId, incarnation: g.settings.incarnation, shell: () => g, view: () => ({ role: 'single', leaderTerm: 0n, leaderAddress: '' }) };
}

function leaderOf(role: GridRole): GridShell {
  const g = role.shell();
  if (g) return g;
  const v = role.view();
  throw new GridError('unavailable', `grid ${role.gridId} is a standby: ${v.leaderAddress ? `the leader is at ${v.leaderAddress} (term ${v.leaderTerm})` : 'no leader is elected yet'}`);
}

export function gridServiceHandlers(role: GridRole, hub: EventHub, defaultIntervalMs: number, onBug: (e: unknown) => void): GridServiceServer {
  return {
    watch: serveWatch(hub),
    registerCluster: unary(async (req) => {
      const g = leaderOf(role);
      if (!isAbsolute(req.storeDir)) throw new GridError('invalid-argument', `store_dir ${JSON.stringify(req.storeDir)} must be an absolute path`);
      if (req.incarnation === 0n) throw new GridError('invalid-argument', 'incarnation must be at least 1');
      // The grid waits out this lease before it runs a lost cluster's units elsewhere (G1): it must be a real one.
      if (req.agentLeaseMs < 1 || req.agentLeaseMs > MAX_AGENT_LEASE_MS) throw new GridError('invalid-argument', `agent_lease_ms ${req.agentLeaseMs} must be between 1 and ${MAX_AGENT_LEASE_MS}`);
      await g.registerCluster({
        clusterId: checkName('cluster id', req.clusterId), incarnation: req.incarnation, address: checkHostPort('cluster address', req.address),
        storeDir: req.storeDir, agentLeaseMs: req.agentLeaseMs,
      });
      return { gridId: g.settings.gridId, heartbeatIntervalMs: g.settings.core.detector.heartbeatIntervalMs, leaseMs: g.settings.core.clusterLeaseMs, leaderTerm: g.fence().term, incarnation: g.fence().incarnation };
    }, onBug),
    clusterHeartbeat: unary(async (req) => {
      const g = leaderOf(role);
      if (req.jobs.length > MAX_SHARES_PER_BEAT) throw new GridError('invalid-argument', `at most ${MAX_SHARES_PER_BEAT} shares per heartbeat`);
      const jobs = req.jobs.map((j) => {
        if (!SHARE_STATES.has(j.state)) throw new GridError('invalid-argument', `bad share state ${JSON.stringify(j.state)} of job ${JSON.stringify(j.jobId)}`);
        if (j.gen > BigInt(Number.MAX_SAFE_INTEGER)) throw new GridError('invalid-argument', `gen ${j.gen} out of range`);
        return { jobId: checkName('job id', j.jobId), state: j.state as MemberJobState, gen: Number(j.gen) };
      });
      if (req.seq > BigInt(Number.MAX_SAFE_INTEGER)) throw new GridError('invalid-argument', `seq ${req.seq} out of range`);
      const a = await g.heartbeat({
        member: checkName('cluster id', req.clusterId), incarnation: req.incarnation, seq: Number(req.seq),
        sentAtMs: Math.floor(g.runtime.clock.nowMs()), jobs, freeUnits: req.freeUnits,
      });
      return { known: a.known, leasedJobs: a.leasedJobs, leaseMs: a.leaseMs, leaderTerm: g.fence().term, incarnation: g.fence().incarnation };
    }, onBug),
    submitGridJob: unary(async (req) => {
      const g = leaderOf(role);
      const { spec, restartPolicy } = checkGridSpec(required('job', req.job), req.restartPolicy);
      await g.submitJob(spec, defaultIntervalMs, restartPolicy);
      return { job: jobStatus(g, spec.jobId) };
    }, onBug),
    checkpointGridJob: unary(async (req) => {
      const g = leaderOf(role);
      const jobId = checkName('job id', req.jobId);
      const a = await g.checkpoint(jobId);
      return { line: lineToPb(lineOf(jobId, a.line, g.catalog.lineTime(jobId, a.line.epoch))), totalMs: a.outcome.timings.totalMs };
    }, onBug),
    controlGridJob: unary(async (req) => {
      const g = leaderOf(role);
      const jobId = checkName('job id', req.jobId);
      const action = jobActionFromWire(req.action);
      const line = checkWireEpoch('grid_epoch', req.gridEpoch);
      if (action !== 'restore' && line !== 0n) throw new GridError('invalid-argument', `grid_epoch is for restore only (job ${action})`);
      const a = await g.controlJob(jobId, action, line === 0n ? null : line);
      return { state: a.state, gridEpoch: a.line ?? 0n, passedOver: a.passedOver, unconfirmedClusters: a.unconfirmed };
    }, onBug),
    gridStatus: unary(() => {
      const g = role.shell();
      const v = role.view();
      const head = { gridId: role.gridId, incarnation: role.incarnation, role: v.role, leaderTerm: v.leaderTerm, leaderAddress: v.leaderAddress };
      if (!g) return { ...head, clusters: [], jobs: [], failuresDetected: 0n, recoveries: 0n };
      return {
        ...head,
        clusters: g.core.clustersView().map((c) => ({
          clusterId: c.clusterId, incarnation: c.incarnation, address: g.clusters.get(c.clusterId)?.address ?? '', verdict: c.verdict,
          phi: c.phi, heartbeatAgeMs: c.silenceMs, storeDir: g.storeOf(c.clusterId),
        })),
        jobs: g.core.jobIds().map((id) => jobStatus(g, id)),
        failuresDetected: BigInt(g.core.failuresDetected),
        recoveries: BigInt(g.core.recoveries()),
      };
    }, onBug),
  };
}
