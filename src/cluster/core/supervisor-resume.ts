import type { Heartbeat } from '../../protocol/messages.js';
import { DEFAULT_RESTART_POLICY, type RestartPolicy } from '../../protocol/job-spec.js';
import { beginRestart } from './supervisor-restart.js';
import type { ClusterState, Job } from './supervisor-state.js';
import type { ClusterPersist, ClusterStep, JobRow } from './supervisor-types.js';

// The job table in the cluster supervisor core (supervisor.ts): each job's
// row, saved through the driver (so before the step's sends) whenever it
// changed, at most once per job per step (C9); and a restarted
// coordinator's resume from it. A local job that was live comes back with
// its placement, start gens and committed epochs (the store's list wins:
// the manifests are the decision) and waits for its nodes: when every node
// registered and its first heartbeat shows the row's start running, the job
// runs on untouched (their leases renewed by this incarnation's answers). A
// node that shows anything else gives a restart in place; a node that does
// not come back within resumeWaitMs is lost, and its units move only after
// any lease the previous incarnation may have granted has lapsed (C1:
// st.grantOf). A local job's row names a ceiling of the epochs its rounds
// may use, reserved in blocks and saved before a PREPARE above the old one
// leaves, so a resumed job numbers above every epoch used (C3).
// Grid-managed rows are the grid's to recover; their epochs are kept known
// so that none is reused here, and their placement so that the grid's
// restore starts their units where the previous incarnation ran them (or
// waits out its leases before it moves them: C1).

export const RESUMED = 'resumed after a coordinator restart';

export function rowOf(job: Job): JobRow {
  return {
    jobId: job.jobId, units: [...job.units], state: job.state, placement: Object.fromEntries([...job.placement].sort()), local: job.local ? { ...job.local } : null,
    // Not the committed epochs (the store lists them at a resume) nor every epoch used: a row is written
    // when the job's lifecycle changes, not at each round. A local job's reserved ceiling bounds its epochs;
    // a grid job's are the grid's to choose (and its agents refuse a reused one).
    committed: [], ...(job.local ? { highestEpoch: job.epochCeiling } : {}), needsFull: job.needsFull, startGens: Object.fromEntries([...job.startGens].sort()), gridGen: job.gridGen,
    lastError: job.lastError, recoveries: job.recoveries,
    // Only when they say more than the defaults: rows of jobs that never named a policy stay as they were.
    ...(isDefaultPolicy(job.restartPolicy) ? {} : { restartPolicy: { ...job.restartPolicy } }),
    ...(job.unitRestarts > 0 ? { unitRestarts: job.unitRestarts } : {}),
  };
}

function isDefaultPolicy(p: RestartPolicy): boolean {
  return p.onUnitFailure === DEFAULT_RESTART_POLICY.onUnitFailure && p.maxRestarts === DEFAULT_RESTART_POLICY.maxRestarts;
}

export function rowKey(row: JobRow): string {
  return JSON.stringify(row, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}

/**
 * At the end of a step: every row that changed goes to the driver (C9). A row whose write failed waits for its retry time.
 * Only rows flagged dirty are built (a step — most are heartbeats — changes none or few); a dirty row equal to the saved one
 * (changed and changed back) is not saved again.
 */
export function saveRows(st: ClusterState, out: ClusterStep): ClusterPersist[] {
  const saved: ClusterPersist[] = [];
  for (const job of st.jobs.values()) {
    if (!job.rowDirty) continue;
    if (job.rowRetryAtMs !== null && st.nowMs < job.rowRetryAtMs) continue;
    job.rowDirty = false;
    const row = rowOf(job);
    const key = rowKey(row);
    if (key === job.savedRow) continue;
    job.savedRow = key;
    job.rowRetryAtMs = null;
    const p: ClusterPersist = { kind: 'jobRow', row };
    out.persist.push(p);
    saved.push(p);
  }
  return saved;
}

/** A row's write failed: it is written again (whole, as it is then) after a heartbeat interval. */
export function rowFailed(st: ClusterState, row: JobRow): void {
  const job = st.jobs.get(row.jobId);
  if (!job) return;
  job.savedRow = null;
  job.rowDirty = true;
  job.rowRetryAtMs = st.nowMs + st.config.heartbeatIntervalMs;
}

/** The constructor's part: jobs back from the job table (before the first step). */
export function takeBack(st: ClusterState, rows: readonly JobRow[], committed: ReadonlyMap<string, bigint[]>): void {
  const order = [...rows].sort((a, b) => Number(isLiveRow(b)) - Number(isLiveRow(a)) || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0));
  for (const row of order) {
    const epochs = [...(committed.get(row.jobId) ?? row.committed)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).slice(-st.config.keepEpochs);
    const newest = epochs.at(-1) ?? 0n;
    const highest = row.highestEpoch !== undefined && row.highestEpoch > newest && !st.mutant('resume-forgets-epochs') ? row.highestEpoch : newest;
    if (row.local === null) {
      // The grid recovers its jobs (this incarnation is a new member to it); the epochs stay known (C3), for as many jobs as the table may hold (C7).
      if (st.knownEpochs.size >= 4 * st.config.maxJobs) continue;
      st.knownEpochs.set(row.jobId, highest);
      st.knownPlacement.set(row.jobId, new Map(Object.entries(row.placement)));
      continue;
    }
    if (st.jobs.has(row.jobId) || st.jobs.size >= st.config.maxJobs) continue;
    const live = isLiveRow(row);
    const job = st.newJob(row.jobId, [...row.units].sort(), { ...row.local }, live ? RESUMED : 'from the job table', {
      state: live ? 'recovering' : row.state, highestEpoch: highest,
      ...(row.restartPolicy ? { restartPolicy: row.restartPolicy } : {}), ...(row.unitRestarts ? { unitRestarts: row.unitRestarts } : {}),
    });
    job.committed = epochs;
    job.needsFull = row.needsFull;
    job.lastError = row.lastError;
    job.recoveries = row.recoveries;
    job.gridGen = row.gridGen;
    // The previous incarnation completed it only after its final round committed (C5): the newest epoch holds its end.
    if (row.state === 'completed') job.doneEpoch = epochs.at(-1) ?? null;
    if (!live) continue;
    job.placement = new Map(Object.entries(row.placement));
    if (job.placement.size > 0) st.emit({ kind: 'jobPlaced', jobId: job.jobId, placement: Object.fromEntries([...job.placement].sort()) });
    job.startGens = new Map(Object.entries(row.startGens));
    job.resume = { seen: new Map() };
  }
}

function isLiveRow(row: JobRow): boolean {
  return row.state === 'running' || row.state === 'recovering' || row.state === 'starting';
}

/** The first step: a resume's recoveries count from it. */
export function resumeStarted(st: ClusterState): void {
  for (const job of st.jobs.values()) if (job.resume) st.recoveryStarted(job, null, RESUMED);
}

export function resumeDeadline(st: ClusterState, job: Job): number | null {
  return job.resume && st.startedAtMs !== null ? st.startedAtMs + st.config.resumeWaitMs : null;
}

/** A registered node's accepted heartbeat: what it says of each resumed job of that node. */
export function onResumeBeat(st: ClusterState, hb: Heartbeat, out: ClusterStep): void {
  const node = hb.member;
  for (const job of [...st.jobs.values()]) {
    const r = job.resume;
    if (!r || r.seen.has(node) || !st.nodesOf(job).includes(node)) continue;
    const gen = job.startGens.get(node);
    const report = hb.jobs.find((j) => j.jobId === job.jobId);
    if (gen === undefined) r.seen.set(node, `no start of the job on ${node} is recorded`);
    else if (!report) r.seen.set(node, `the agent on ${node} no longer has the job`);
    else if (report.gen !== gen) r.seen.set(node, `the agent on ${node} runs start ${report.gen} of the job, not ${gen}`);
    else if (report.state === 'running' || report.state === 'completed') r.seen.set(node, 'ok');
    else r.seen.set(node, `the units on ${node} were ${report.state}`);
    if (st.nodesOf(job).every((n) => r.seen.has(n))) endResume(st, job, [], out);
  }
}

/** resumeWaitMs after the first step: nodes not registered by then are lost; registered ones not heard from restart in place. */
export function resumeTime(st: ClusterState, job: Job, out: ClusterStep): void {
  const at = resumeDeadline(st, job);
  if (at === null || st.nowMs < at) return;
  const missing = st.nodesOf(job).filter((n) => !job.resume!.seen.has(n));
  endResume(st, job, missing.filter((n) => !st.nodes.has(n)), out);
}

function endResume(st: ClusterState, job: Job, lost: string[], out: ClusterStep): void {
  const r = job.resume!;
  const nodes = st.nodesOf(job);
  const problem = lost.length > 0
    ? `${lost.length === 1 ? 'node' : 'nodes'} ${lost.join(', ')} did not register again within ${st.config.resumeWaitMs} ms after the coordinator restarted`
    : nodes.length === 0 ? 'no placement is recorded' : nodes.map((n) => r.seen.get(n) ?? `${n} sent no heartbeat in time`).find((s) => s !== 'ok');
  if (problem === undefined) {
    job.resume = null;
    st.become(job, 'running', 'every node still runs its units');
    st.recoveryEnded(job, true, false);
    if (job.local && job.local.intervalMs > 0) job.nextRoundAtMs = st.nowMs + job.local.intervalMs;
    return;
  }
  job.resume = null;
  beginRestart(st, job, `${RESUMED}: ${problem}`, lost, out);
}
