import { failpointAsync } from '../common/failpoints.js';
import type { ParticipantInput, UnitOp } from './core/participant.js';
import { PAGE_BYTES } from './memory/page-memory.js';
import { warmStaging, message, trimEpochs, type JobShell } from './job-shell.js';
import type { AgentDeps } from './agent.js';
import { writeNodePart, commitEpoch, removeIfIncomplete } from '../store/index.js';
import { storedSpecOf } from '../store/stored-spec.js';

// The agent's effects, as the participant core asks for them (UnitOp): the
// freeze, snapshot and thaw of a job's units, the write of a part or of a
// local epoch, and the marking of pages changed again. Each op of one job
// runs after the one before it (JobShell.chain); its result goes back to the
// core as an input. Nothing here decides: a failure is reported, and the
// core says what follows (thaw, refuse, mark changed again).

export interface OpsTarget {
  deps: AgentDeps;
  shell(jobId: string): JobShell | null;
  input(i: ParticipantInput): void;
  /** Spawns (or restores and spawns) a job's units for the start that asked (by reqId). */
  spawn(op: Extract<UnitOp, { op: 'spawn' }>): Promise<void>;
  /** Kills a job's units; graceful: a stop, else a fence (its pages go too). */
  kill(jobId: string, graceful: boolean): Promise<void>;
  /** The core forgot an ended job: its pages, unit records and secrets go. */
  forget(jobId: string): void;
  onLocalWritten(jobId: string, epoch: bigint): void;
  onStepFailed(jobId: string, epoch: bigint, stage: string, err: unknown): void;
}

export async function performOp(t: OpsTarget, op: UnitOp): Promise<void> {
  const { memory, supervisor } = t.deps;
  const { clock } = t.deps.runtime;
  const job = t.shell(op.jobId);
  switch (op.op) {
    case 'spawn': return t.spawn(op);
    case 'kill': return t.kill(op.jobId, op.graceful);
    case 'freeze': {
      if (!job) return;
      // Outside the window: size and warm the staging, then freeze.
      warmStaging(job, memory.hasJob(op.jobId) ? memory.snapshotBytes(op.jobId, op.full ? 'full' : 'changed') : 0, PAGE_BYTES);
      job.frozenAt.set(op.epoch, clock.nowMs());
      try {
        await supervisor.freezeJob(op.jobId);
        job.gate.close();
      } catch (err) {
        job.freezeErrors.set(op.epoch, err);
      }
      return;
    }
    case 'snapshot': {
      if (!job) return;
      const t0 = job.frozenAt.get(op.epoch) ?? clock.nowMs();
      if (job.freezeErrors.has(op.epoch)) {
        const err = job.freezeErrors.get(op.epoch);
        job.freezeErrors.delete(op.epoch);
        t.deps.metrics.checkpointFailed('freeze');
        t.onStepFailed(op.jobId, op.epoch, 'freeze', err);
        t.input({ kind: 'snapshotFailed', jobId: op.jobId, epoch: op.epoch, stage: 'freeze', reason: message(err) });
        return;
      }
      const t1 = clock.nowMs();
      try {
        await failpointAsync('node.frozen');
        const snapshot = memory.hasJob(op.jobId)
          ? memory.snapshot(op.jobId, op.full ? 'full' : 'changed', job.staging ?? undefined)
          : { entries: [], staging: new Uint8Array(0), pageCount: 0, pagesSwappedIn: 0 };
        job.snapshots.set(op.epoch, snapshot);
        job.timing.set(op.epoch, { freezeMs: t1 - t0, snapshotMs: clock.nowMs() - t1, thawMs: 0, freezeWindowMs: 0, pagesSwappedIn: snapshot.pagesSwappedIn });
        trimEpochs(job.timing);
        t.input({ kind: 'snapshotTaken', jobId: op.jobId, epoch: op.epoch, pages: snapshot.pageCount, bytes: snapshot.staging.byteLength });
      } catch (err) {
        t.deps.metrics.checkpointFailed('snapshot');
        t.onStepFailed(op.jobId, op.epoch, 'snapshot', err);
        t.input({ kind: 'snapshotFailed', jobId: op.jobId, epoch: op.epoch, stage: 'snapshot', reason: message(err) });
      }
      return;
    }
    case 'thaw': {
      const t2 = clock.nowMs();
      try {
        await supervisor.thawJob(op.jobId);
      } finally {
        job?.gate.open();
      }
      if (!job) return;
      // The window closes here: stamp it on the epoch that froze.
      for (const [epoch, t0] of job.frozenAt) {
        job.frozenAt.delete(epoch);
        const timing = job.timing.get(epoch);
        if (timing) {
          timing.thawMs = clock.nowMs() - t2;
          timing.freezeWindowMs = clock.nowMs() - t0;
        }
      }
      return;
    }
    case 'dropStaging': return markChangedAgain(t, op.jobId, op.epoch);
    case 'settle':
      if (!op.confirmed) markChangedAgain(t, op.jobId, op.epoch);
      else {
        job?.snapshots.delete(op.epoch);
        // The participant's commit: its coordinator built on this epoch (issue 8: it was never counted).
        t.deps.metrics.partConfirmed();
      }
      return;
    case 'write': return write(t, op);
    case 'forget': return t.forget(op.jobId);
  }
}

function markChangedAgain(t: OpsTarget, jobId: string, epoch: bigint): void {
  const job = t.shell(jobId);
  const snapshot = job?.snapshots.get(epoch);
  if (!job || !snapshot) return;
  job.snapshots.delete(epoch);
  // A fenced job's pages are gone already: nothing to mark.
  if (t.deps.memory.hasJob(jobId)) t.deps.memory.restoreChanged(jobId, snapshot.entries);
}

async function write(t: OpsTarget, op: Extract<UnitOp, { op: 'write' }>): Promise<void> {
  const { config, memory, metrics } = t.deps;
  const { clock } = t.deps.runtime;
  const job = t.shell(op.jobId);
  const snapshot = job?.snapshots.get(op.epoch);
  if (!job || !snapshot) {
    t.input({ kind: 'partFailed', jobId: op.jobId, epoch: op.epoch, reqId: op.reqId, to: op.to, reason: `the snapshot of epoch ${op.epoch} is gone` });
    return;
  }
  const t0 = clock.nowMs();
  try {
    const part = await writeNodePart({
      storeDir: config.storeDir, jobId: op.jobId, epoch: op.epoch, nodeId: op.writer, staging: snapshot.staging, pages: snapshot.entries,
    });
    const containers = memory.hasJob(op.jobId) ? memory.containers(op.jobId).map((c) => ({ name: c.name, pageCount: c.pageCount })) : [];
    let manifest = null;
    if (op.local) {
      manifest = await commitEpoch({
        storeDir: config.storeDir, jobId: op.jobId, epoch: op.epoch, parentEpoch: op.parentEpoch, full: op.full,
        createdUnixMs: clock.wallMs(), containers, parts: [part],
        layout: { spec: storedSpecOf(job.spec), placement: {}, partOwners: {} },
      });
      job.snapshots.delete(op.epoch); // committed: its pages are saved
    }
    job.written.set(op.epoch, { part, containers, writeMs: clock.nowMs() - t0, manifest });
    trimEpochs(job.written);
    const figures = { freezeWindowMs: job.timing.get(op.epoch)?.freezeWindowMs ?? 0, writeMs: clock.nowMs() - t0, bytes: snapshot.staging.byteLength, pages: snapshot.entries.length };
    if (op.local) {
      metrics.checkpointCommitted(figures);
      t.onLocalWritten(op.jobId, op.epoch);
    } else {
      // A round's part: its bytes are exported now; the commit is counted when the coordinator confirms it (settle).
      metrics.partWritten(figures);
    }
    t.input({ kind: 'written', jobId: op.jobId, epoch: op.epoch, reqId: op.reqId });
  } catch (err) {
    // Best effort: a half-written local epoch has no manifest, so it is never restored either way. Not a
    // plain rm: a commit can fail after its rename (the directory's fsync), and a committed epoch stays.
    if (op.local) await removeIfIncomplete(config.storeDir, op.jobId, op.epoch).catch(() => undefined);
    metrics.checkpointFailed('write');
    t.onStepFailed(op.jobId, op.epoch, 'write', err);
    t.input({ kind: 'partFailed', jobId: op.jobId, epoch: op.epoch, reqId: op.reqId, to: op.to, reason: message(err) });
  }
}
