import { randomBytes } from 'node:crypto';
import { newJobShell, message, type JobShell } from './job-shell.js';
import type { JobSpec } from './job-spec.js';
import { runRestore, type RestoreResult, type RestoreScope } from './restore-runner.js';
import type { ParticipantInput, UnitOp } from './core/participant.js';
import type { AgentDeps } from './agent-types.js';

// The agent's spawn and kill ops (core UnitOps): a start or restore brings a
// job's units up (a restore loads the chosen epoch first), a kill stops them
// (with grace for a stop; at once for a fence, whose pages go too). The
// result of a spawn goes back to the core as its `spawned` input.

/** What a start asked for, kept by the shell until its spawn op runs (the core keeps only unit ids). */
export type StartCtx =
  | { kind: 'start'; spec: JobSpec }
  | { kind: 'restore'; jobId: string; epoch: bigint | null; scope: RestoreScope; result?: RestoreResult; error?: unknown };

export interface SpawnTarget {
  deps: AgentDeps;
  startCtx(reqId: number): StartCtx | undefined;
  setShell(jobId: string, shell: JobShell): void;
  input(i: ParticipantInput): void;
  jobState(jobId: string): string | null;
}

export async function spawnUnits(t: SpawnTarget, op: Extract<UnitOp, { op: 'spawn' }>): Promise<void> {
const ctx = t.startCtx(op.reqId);
const { memory, config } = t.deps;
  if (!ctx) {
    t.input({ kind: 'spawned', jobId: op.jobId, reqId: op.reqId, corrupt: null, failed: 'the start was withdrawn' });
    return;
  }
  try {
    if (ctx.kind === 'start') {
      if (memory.hasJob(op.jobId)) memory.dropJob(op.jobId);
      const shell = newJobShell(ctx.spec, config.limits.maxGatedRequests);
      t.setShell(op.jobId, shell);
      await startUnits(t.deps, shell, null);
      t.input({ kind: 'spawned', jobId: op.jobId, reqId: op.reqId, corrupt: null, restored: null });
      return;
    }
    const result = await runRestore(t.deps, op.jobId, ctx.epoch, ctx.scope);
    ctx.result = result;
    const shell = newJobShell(result.spec, config.limits.maxGatedRequests);
    t.setShell(op.jobId, shell);
    await startUnits(t.deps, shell, result.manifest.epoch);
    t.input({
      kind: 'spawned', jobId: op.jobId, reqId: op.reqId, corrupt: null,
      restored: {
        epoch: result.manifest.epoch, highestEpoch: result.highestEpoch, chainLength: result.chainLength,
        job: { units: result.spec.units.map((u) => u.unitId), intervalMs: result.spec.checkpointIntervalMs, fullEvery: result.spec.fullEvery },
      },
    });
  } catch (err) {
    if (ctx.kind === 'restore') ctx.error = err;
    await t.deps.supervisor.stopJob(op.jobId, 0).catch(() => undefined);
    t.input({ kind: 'spawned', jobId: op.jobId, reqId: op.reqId, corrupt: null, failed: message(err) });
  }
}

export async function killUnits(t: SpawnTarget, jobId: string, graceful: boolean): Promise<void> {
const { supervisor, memory, config, log } = t.deps;
  if (!graceful) log.warn({ jobId }, 'killing the units of a fenced job');
  await supervisor.stopJob(jobId, graceful ? config.stopGraceMs : 0).catch((err: unknown) => log.error({ jobId, err: String(err) }, 'killing units failed'));
  // A fenced job's pages go: its coordinator restores them elsewhere.
  if (!graceful && t.jobState(jobId) !== 'starting' && memory.hasJob(jobId)) memory.dropJob(jobId);
}

async function startUnits(deps: AgentDeps, shell: JobShell, restoredEpoch: bigint | null): Promise<void> {
const { config, supervisor } = deps;
  for (const unit of shell.spec.units) {
    const token = randomBytes(16).toString('hex');
    shell.tokens.set(unit.unitId, token);
    const env: Record<string, string> = {
      GRIDCKPT_SOCKET: config.unitSocket,
      GRIDCKPT_NODE_ID: config.nodeId,
      GRIDCKPT_JOB_ID: shell.spec.jobId,
      GRIDCKPT_UNIT_ID: unit.unitId,
      GRIDCKPT_UNIT_TOKEN: token,
    };
    if (restoredEpoch !== null) env['GRIDCKPT_RESTORED_EPOCH'] = restoredEpoch.toString();
    await supervisor.start(shell.spec.jobId, unit, env);
  }
}
