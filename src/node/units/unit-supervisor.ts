import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { GridError } from '../../common/errors.js';
import { failpointAsync } from '../../common/failpoints.js';
import type { Logger } from '../../common/log.js';
import type { Freezer } from './freezer.js';
import { hasExited, isGone, readProcState } from './proc-stat.js';
import { unitEnv } from './unit-env.js';
import type { TimerPort } from '../../runtime/ports.js';
import { settlesWithin } from '../../runtime/timers.js';

// The node agent's hands on its units: it spawns each unit as a real OS
// process in its own process group and freezer group, remembers it until it
// exits, and freezes, thaws and stops a job's units as one.
//
// Invariants:
// 1. Always thaw (ARCHITECTURE §3.4): freezeJob either leaves every unit of
//    the job frozen or, when any freeze fails, thaws every unit it touched
//    before it throws; stopJob thaws before it signals, and kills through
//    the freezer so that a frozen unit dies too.
// 2. A unit's pid is signalled only while its record says it has not
//    exited: Node reaps a child and emits 'exit' in one step, so until then
//    the pid (and the pgid, which equals it) cannot have been reused.
// 3. At most one live process per <jobId>+<unitId>, and a group name is
//    reused only after the previous holder's group has been removed.

export interface UnitSpec {
  unitId: string;
  command: string;
  args: string[];
  env: Record<string, string>;
}

export type UnitState = 'running' | 'frozen' | 'exited';

export interface UnitInfo {
  jobId: string;
  unitId: string;
  pid: number;
  state: UnitState;
  exitCode: number | null;
  signal: string | null;
  starts: number;
}

export interface SupervisorOptions {
  freezer: Freezer;
  /** Unit stdout+stderr are appended to <logDir>/<jobId>+<unitId>.log. */
  logDir: string;
  freezeTimeoutMs: number;
  onExit?: (info: UnitInfo) => void;
  /** Where failures nobody awaits (removing the group of a unit that exited by itself) are reported. */
  log?: Logger;
  /** For the grace and kill waits of stopJob. */
  timers: TimerPort;
}

/** The umask a unit starts with (documented in unit.proto). */
export const UNIT_UMASK = '022';

/** How long stopJob waits for SIGKILLed units to be reaped before it gives up and says which. */
export const KILL_WAIT_MS = 10_000;
/** The SIGTERM grace shutdown() gives units when the caller names none. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 2_000;

interface UnitRecord {
  info: UnitInfo;
  group: string;
  child: ChildProcess;
  exited: Promise<void>;
}

export class UnitSupervisor {
  private readonly table = new Map<string, Map<string, UnitRecord>>();
  /** (Re)starts per unit, per job: kept when a unit exits so that a restart counts on. */
  private readonly starts = new Map<string, Map<string, number>>();
  private readonly starting = new Set<string>();
  /** Group removals started when a unit exited; each settles with the error, if any. */
  private readonly removals = new Map<string, Promise<Error | null>>();

  constructor(private readonly opts: SupervisorOptions) {}

  async start(jobId: string, spec: UnitSpec, extraEnv: Record<string, string>): Promise<UnitInfo> {
    const group = `${jobId}+${spec.unitId}`; // "+" is outside the name alphabet: no two (job, unit) pairs collide
    if (this.starting.has(group) || this.liveGroup(group)) {
      const holder = this.liveGroup(group)?.info;
      const other = holder && (holder.jobId !== jobId || holder.unitId !== spec.unitId);
      const who = other ? ` as unit ${holder.unitId} of job ${holder.jobId}` : '';
      throw new GridError('already-exists', `group ${group} (unit ${spec.unitId} of job ${jobId}) is already running${who}`);
    }
    this.starting.add(group);
    try {
      await this.removals.get(group); // invariant 3
      const child = await this.spawnUnit(jobId, group, spec, extraEnv);
      return { ...this.track(jobId, spec.unitId, group, child).info };
    } finally {
      this.starting.delete(group);
    }
  }

  /** Freezes every live unit of the job at once; see invariant 1 for failures. */
  async freezeJob(jobId: string): Promise<void> {
    const targets = this.live(jobId);
    await failpointAsync('node.freeze-targets'); // tests: a unit exits between the choice of targets and its freeze
    const results = await Promise.allSettled(
      targets.map(async (r) => {
        await this.opts.freezer.freeze(r.group, r.info.pid, this.opts.freezeTimeoutMs);
        if (r.info.state !== 'exited') r.info.state = 'frozen';
      }),
    );
    // A unit that exited meanwhile has nothing left to freeze (its group is gone, or it never stops as a zombie):
    // that is no failure of the checkpoint (issue 8), whose snapshot holds what it left in its containers. Its
    // exit is the job's business, told by onExit. Its exit event may not have been handled yet (the freeze of a
    // zombie fails at once): the process's own state decides.
    const failures: ReturnType<typeof failuresOf> = [];
    for (const f of failuresOf(targets, results)) {
      const r = targets.find((t) => t.info.unitId === f.unitId);
      if (r && (r.info.state === 'exited' || hasExited(await readProcState(r.info.pid)))) continue;
      failures.push(f);
    }
    if (failures.length === 0) return;
    const thawFailures = await this.thawUnits(targets);
    const thawNote = thawFailures.length > 0 ? `; thawing afterwards failed too: ${describe(thawFailures)}` : '';
    throw new Error(`cannot freeze job ${jobId}: ${describe(failures)}${thawNote}`, { cause: failures[0]?.error });
  }

  /** Thaws every live unit of the job, whatever it is recorded as, and reports all that failed. */
  async thawJob(jobId: string): Promise<void> {
    const failures = await this.thawUnits(this.live(jobId));
    if (failures.length === 0) return;
    throw new AggregateError(
      failures.map((f) => f.error),
      `cannot thaw job ${jobId}: ${describe(failures)}`,
    );
  }

  /**
   * SIGTERM to each unit's process group (thawed first), SIGKILL after
   * graceMs; resolves once all have exited and their groups are removed.
   */
  async stopJob(jobId: string, graceMs: number): Promise<void> {
    const live = this.live(jobId);
    await this.thawUnits(live); // a stopped unit cannot act on SIGTERM; failures are handled by the kill below
    for (const r of live) signalUnit(r, 'SIGTERM');
    if (!(await settlesWithin(this.opts.timers, Promise.all(live.map((r) => r.exited)), graceMs))) {
      const stubborn = live.filter((r) => r.info.state !== 'exited');
      for (const r of stubborn) signalUnit(r, 'SIGKILL');
      // remove() SIGKILLs everything in the group and thaws it, so a unit frozen meanwhile dies as well.
      const killErrors = await Promise.all(stubborn.map((r) => this.removeGroup(r.group)));
      if (!(await settlesWithin(this.opts.timers, Promise.all(stubborn.map((r) => r.exited)), KILL_WAIT_MS))) {
        const left = stubborn.filter((r) => r.info.state !== 'exited').map((r) => `${r.info.unitId} (pid ${r.info.pid})`);
        const why = describe(stubborn.flatMap((r, i) => (killErrors[i] ? [{ unitId: r.info.unitId, error: killErrors[i] }] : [])));
        throw new Error(`units of job ${jobId} survived SIGKILL: ${left.join(', ')}${why ? `; ${why}` : ''}`);
      }
    }
    const records = [...(this.table.get(jobId)?.values() ?? [])];
    const removalErrors = await Promise.all(records.map((r) => this.removals.get(r.group) ?? null));
    const failures = records.flatMap((r, i) => {
      const error = removalErrors[i];
      return error ? [{ unitId: r.info.unitId, error }] : [];
    });
    if (failures.length > 0) throw new Error(`job ${jobId} stopped, but removing its groups failed: ${describe(failures)}`);
  }

  units(jobId: string): UnitInfo[] {
    return [...(this.table.get(jobId)?.values() ?? [])].map((r) => ({ ...r.info }));
  }

  jobs(): string[] {
    return [...this.table.keys()];
  }

  /** Drops a job whose units have all exited from the table (the table is otherwise kept for status). */
  forgetJob(jobId: string): void {
    if (this.live(jobId).length > 0) throw new GridError('failed-precondition', `job ${jobId} still has live units`);
    this.table.delete(jobId);
    this.starts.delete(jobId);
  }

  async waitExited(jobId: string): Promise<UnitInfo[]> {
    await Promise.all([...(this.table.get(jobId)?.values() ?? [])].map((r) => r.exited));
    return this.units(jobId);
  }

  /** Stops every job; tries all of them even if one fails. */
  async shutdown(graceMs = DEFAULT_SHUTDOWN_GRACE_MS): Promise<void> {
    const jobIds = this.jobs();
    const results = await Promise.allSettled(jobIds.map((j) => this.stopJob(j, graceMs)));
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (errors.length > 0) throw new AggregateError(errors, `shutdown: ${errors.length} of ${jobIds.length} jobs did not stop cleanly`);
  }

  // ---- internals ----

  private async spawnUnit(jobId: string, group: string, spec: UnitSpec, extraEnv: Record<string, string>): Promise<ChildProcess> {
    const { freezer, logDir } = this.opts;
    const plan = await freezer.plan(group, spec.command, spec.args);
    await mkdir(logDir, { recursive: true, mode: 0o700 });
    // A unit's output may hold its data: its log is the agent user's alone (the agent runs with umask 077 too).
    const logFile = await open(join(logDir, `${jobId}+${spec.unitId}.log`), 'a', 0o600);
    try {
      await logFile.chmod(0o600);
      // The unit gets the usual umask, not the agent's 077 (unit.proto: a unit's own files are its business);
      // exec keeps the pid, so the freezer's wrapper and the pid Node tracks are the same process.
      const child = spawn('/bin/sh', ['-c', `umask ${UNIT_UMASK} && exec "$0" "$@"`, plan.command, ...plan.args], {
        detached: true, // own session and process group: pgid = pid, which the signal freezer and stopJob rely on
        env: unitEnv(spec.env, extraEnv), // not the agent's own: see unit-env.ts
        stdio: ['ignore', logFile.fd, logFile.fd],
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      return child;
    } catch (err) {
      await freezer.remove(group).catch(() => undefined);
      throw new Error(`cannot start unit ${spec.unitId} of job ${jobId} (${spec.command}): ${(err as Error).message}`, { cause: err });
    } finally {
      await logFile.close(); // the child holds its own copy
    }
  }

  private track(jobId: string, unitId: string, group: string, child: ChildProcess): UnitRecord {
    if (child.pid === undefined) throw new Error(`invariant broken: spawned unit ${group} has no pid`);
    let jobStarts = this.starts.get(jobId);
    if (!jobStarts) this.starts.set(jobId, (jobStarts = new Map()));
    const starts = (jobStarts.get(unitId) ?? 0) + 1;
    jobStarts.set(unitId, starts);
    const info: UnitInfo = { jobId, unitId, pid: child.pid, state: 'running', exitCode: null, signal: null, starts };
    let markExited = (): void => undefined;
    const exited = new Promise<void>((resolve) => (markExited = resolve));
    const record: UnitRecord = { info, group, child, exited };
    child.on('error', (err) => this.opts.log?.warn({ group, err: String(err) }, 'unit process error'));
    child.once('exit', (code, signal) => {
      info.state = 'exited';
      info.exitCode = code;
      info.signal = signal;
      void this.removeGroup(group);
      markExited();
      this.opts.onExit?.({ ...info });
    });
    let units = this.table.get(jobId);
    if (!units) this.table.set(jobId, (units = new Map()));
    units.set(unitId, record);
    return record;
  }

  /**
   * Removes a unit's group (its descendants die with it). Removals of one
   * group run one after the other, and stopJob and start() await them; a
   * failure is logged and kept as the settled value.
   */
  private removeGroup(group: string): Promise<Error | null> {
    const previous = this.removals.get(group) ?? Promise.resolve(null);
    const removal = previous
      .then(() => this.opts.freezer.remove(group))
      .then(
        () => null,
        (err: unknown) => {
          this.opts.log?.warn({ group, err: String(err) }, 'cannot remove the group of a unit');
          return err instanceof Error ? err : new Error(String(err));
        },
      );
    this.removals.set(group, removal);
    void removal.then((error) => {
      if (!error && this.removals.get(group) === removal) this.removals.delete(group);
    });
    return removal;
  }

  /**
   * The live unit holding a group name. Names can collide across jobs
   * (job "a" unit "b.c" and job "a.b" unit "c" are both group a.b.c), so the
   * check spans every job.
   */
  private liveGroup(group: string): UnitRecord | undefined {
    for (const units of this.table.values()) {
      for (const r of units.values()) if (r.group === group && r.info.state !== 'exited') return r;
    }
    return undefined;
  }

  private live(jobId: string): UnitRecord[] {
    return [...(this.table.get(jobId)?.values() ?? [])].filter((r) => r.info.state !== 'exited');
  }

  private async thawUnits(targets: UnitRecord[]): Promise<UnitFailure[]> {
    const results = await Promise.allSettled(
      targets.map(async (r) => {
        await this.opts.freezer.thaw(r.group, r.info.pid, this.opts.freezeTimeoutMs);
        if (r.info.state === 'frozen') r.info.state = 'running';
      }),
    );
    return failuresOf(targets, results);
  }
}

interface UnitFailure {
  unitId: string;
  error: unknown;
}

function failuresOf(targets: UnitRecord[], results: PromiseSettledResult<unknown>[]): UnitFailure[] {
  return targets.flatMap((r, i) => {
    const result = results[i];
    return result?.status === 'rejected' ? [{ unitId: r.info.unitId, error: result.reason as unknown }] : [];
  });
}

function describe(failures: UnitFailure[]): string {
  return failures.map((f) => `unit ${f.unitId}: ${f.error instanceof Error ? f.error.message : String(f.error)}`).join('; ');
}

/** Signals a live unit's process group (invariant 2 makes the pgid safe to use). */
function signalUnit(r: UnitRecord, signal: NodeJS.Signals): void {
  if (r.info.state === 'exited') return;
  try {
    process.kill(-r.info.pid, signal);
  } catch (err) {
    if (!isGone(err)) throw err;
  }
}
