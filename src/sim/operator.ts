import type { JobAction } from '../protocol/messages.js';
import type { LocalAnswer, LocalRequest } from '../cluster/core/supervisor-types.js';
import type { GridInput, GridReply } from '../grid/core/supervisor-types.js';
import type { SeededRng } from '../runtime/rng.js';
import type { SimCluster } from './cluster-member.js';
import type { SimGrid } from './members.js';
import type { World } from './world.js';

// An operator in the simulator: job control (`gridckpt job cancel|delete|
// restore`) at the grid (the bank job) or at a cluster (its local job), drawn
// from the seed like the faults and falling among them. Each action is a
// little script an operator would run, retried as one would: a request whose
// answer does not come (its coordinator crashed) or is refused for now (a
// recovery under way, a deleted job's leases not lapsed yet) is sent again.
//   cancel-restore   cancel, wait, restore from the newest epoch or line
//   delete-resubmit  delete, wait, submit the same job again under its id
//   restore          restore from the newest epoch or line, once
// Every script ends with the job running again, so the run still ends with
// the failure-free answer (§3.5); the checkers look at each answer.

export type OperatorKind = 'cancel-restore' | 'delete-resubmit' | 'restore';

export interface OperatorAction {
  atMs: number;
  kind: OperatorKind;
  /** 'grid' (the bank job) or a cluster id (its local job). */
  target: string;
  /** Between a cancel or delete and the restore or submit that follows. */
  pauseMs: number;
}

const KINDS: OperatorKind[] = ['cancel-restore', 'delete-resubmit', 'restore'];
/** A request with no answer after this is sent again (its coordinator may have crashed with it). */
const RESEND_MS = 1_500;
/** A refused request is sent again after this. */
const RETRY_MS = 250;

/** kinds: the scenario's (a mutant's); without, any, 0 to 2 actions. */
export function drawOperatorActions(rng: SeededRng, clusters: readonly string[], windowMs: { fromMs: number; toMs: number }, kinds?: readonly OperatorKind[], count?: number): OperatorAction[] {
  const n = count ?? rng.int(3);
  const out: OperatorAction[] = [];
  for (let i = 0; i < n; i++) {
    const pool = kinds ?? KINDS;
    out.push({
      atMs: windowMs.fromMs + rng.int(windowMs.toMs - windowMs.fromMs),
      kind: pool[rng.int(pool.length)]!,
      target: rng.int(2) === 0 ? 'grid' : clusters[rng.int(clusters.length)]!,
      pauseMs: 50 + rng.int(600),
    });
  }
  return out.sort((a, b) => a.atMs - b.atMs);
}

export interface OperatorEnv {
  world: World;
  grid: () => SimGrid;
  clusters: Map<string, SimCluster>;
  bankUnits: string[];
  localJob: (cluster: string) => string;
  localSubmit: (cluster: string) => Extract<LocalRequest, { kind: 'submitJob' }>;
  /** A cancel or delete answered: who said they stopped the job. */
  cancelled: (target: string, jobId: string, confirmed: readonly string[]) => void;
  log: (line: string) => void;
}

type Answer = { ok: true; stoppedBy?: string[] } | { ok: false; why: string };

/** Runs one action's script; each phase is resent until it is answered well. */
export function runOperatorAction(env: OperatorEnv, a: OperatorAction): void {
  const phases: Array<'cancel' | 'delete' | 'restore' | 'submit'> =
    a.kind === 'cancel-restore' ? ['cancel', 'restore'] : a.kind === 'delete-resubmit' ? ['delete', 'submit'] : ['restore'];
  const jobId = a.target === 'grid' ? 'bank' : env.localJob(a.target);
  let phase = 0;
  let attempt = 0;
  const next = (): void => {
    if (phase >= phases.length) return;
    const what = phases[phase]!;
    const mine = ++attempt;
    const settle = (r: Answer): void => {
      if (mine !== attempt) return; // an answer to a request already sent again
      attempt += 1;
      env.log(`OPERATOR ${what} ${jobId}@${a.target}: ${r.ok ? 'ok' : r.why}`);
      if (!r.ok) return void env.world.after(RETRY_MS, next);
      if (r.stoppedBy) env.cancelled(a.target, jobId, r.stoppedBy);
      phase += 1;
      env.world.after(phase === 1 ? a.pauseMs : 0, next);
    };
    env.world.after(RESEND_MS, () => { if (mine === attempt) { attempt += 1; next(); } });
    send(env, a.target, jobId, what, settle);
  };
  env.world.at(a.atMs, next);
}

function send(env: OperatorEnv, target: string, jobId: string, what: 'cancel' | 'delete' | 'restore' | 'submit', settle: (r: Answer) => void): void {
  if (target === 'grid') {
    const input = (reqId: number): GridInput => (what === 'submit'
      ? { kind: 'submit', reqId, jobId, units: env.bankUnits }
      : { kind: 'control', reqId, jobId, action: what as JobAction, line: null });
    return env.grid().operator(input, (r) => settle(gridAnswer(what, r)));
  }
  const c = env.clusters.get(target)!;
  if (!c.proc.alive) return;
  const req: LocalRequest = what === 'submit' ? env.localSubmit(target) : { kind: 'control', jobId, action: what, epoch: null };
  c.localCall(req, (r) => settle(localAnswer(what, r)));
}

function gridAnswer(what: string, r: GridReply): Answer {
  if (r.kind === 'submitted') return r.ok || r.code === 'already-exists' ? { ok: true } : { ok: false, why: r.reason };
  if (r.kind !== 'controlled') return { ok: false, why: `answered ${r.kind}` };
  const x = r.answer;
  // A delete sent again after its answer was lost finds the job gone: done.
  if (x.kind === 'refused') return what === 'delete' && x.code === 'not-found' ? { ok: true } : { ok: false, why: `${x.code}: ${x.reason}` };
  return what === 'restore' ? { ok: true } : { ok: true, stoppedBy: x.confirmed };
}

function localAnswer(what: string, r: LocalAnswer): Answer {
  if (r.kind === 'refused') {
    if (what === 'delete' && r.code === 'not-found') return { ok: true };
    if (what === 'submit' && r.code === 'already-exists') return { ok: true };
    return { ok: false, why: `${r.code ?? 'refused'}: ${r.reason}` };
  }
  if (r.kind === 'controlled') return { ok: true, stoppedBy: r.confirmed };
  return { ok: true };
}
