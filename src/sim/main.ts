import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Command, InvalidArgumentError } from 'commander';
import { runBatch, type BatchResult, type BatchSpec } from './batch.js';
import { MUTANTS, mutantNamed, scenarioOf, type Scenario } from './mutants.js';
import { runSeed } from './run.js';
import { runContainersSeed } from './containers/run.js';

// `npm run sim`: run seeds of the whole-grid simulator (or, with --scenario
// containers, of the page ownership protocol), replay one, run a mutant, or
// run the regression list. Exits 1 when a seed fails (or, with
// --mutant, when no seed catches the mutant).

const REGRESSIONS = new URL('../../../src/sim/regressions.json', import.meta.url);

function int(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
}

interface Regression { seed: number; mutant?: string; scenario?: Scenario; why: string }

function regressions(): Regression[] {
  return JSON.parse(readFileSync(REGRESSIONS, 'utf8')) as Regression[];
}

async function runParallel(spec: BatchSpec, workers: number): Promise<BatchResult> {
  if (workers <= 1 || spec.seeds.length < 8) return runBatch(spec);
  const chunks: number[][] = Array.from({ length: workers }, () => []);
  spec.seeds.forEach((s, i) => chunks[i % workers]!.push(s));
  const parts = await Promise.all(chunks.map((seeds) => new Promise<BatchResult>((resolve, reject) => {
    const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: { ...spec, seeds } });
    w.once('message', (m: BatchResult) => resolve(m));
    w.once('error', reject);
  })));
  const results = parts.flatMap((p) => p.results).sort((a, b) => a.seed - b.seed);
  return { results };
}

function replayCommand(seed: number, mutant: string | null, ha = false, scenario: Scenario = 'grid'): string {
  return `npm run sim -- ${scenario === 'grid' ? '' : `--scenario ${scenario} `}--seed ${seed}${mutant ? ` --mutant ${mutant}` : ''}${ha ? ' --ha' : ''}`;
}

function scenarioArg(v: string): Scenario {
  if (v !== 'grid' && v !== 'containers') throw new InvalidArgumentError(`--scenario must be grid or containers, got ${JSON.stringify(v)}`);
  return v;
}

async function main(): Promise<void> {
  const program = new Command('sim')
    .description('deterministic simulation of a whole grid under faults (ARCHITECTURE §8)')
    .option('--seeds <n>', 'how many seeds to run', int('--seeds', 1), 200)
    .option('--from <s>', 'first seed', int('--from', 0), 1)
    .option('--seed <s>', 'replay one seed and print its trace', int('--seed', 0))
    .option('--mutant <name>', 'run a deliberately broken variant (see --list-mutants)')
    .option('--list-mutants', 'name the mutants and what catches each')
    .option('--regressions', 'run the committed list of seeds that once failed')
    .option('--scenario <name>', 'grid (the whole grid, default) or containers (the page ownership protocol of one cluster: docs/ownership.md)', scenarioArg)
    .option('--ha', 'three grid coordinators electing a leader through a simulated etcd, and the leader\'s faults (docs/grid-ha.md)')
    .option('--workers <n>', 'worker threads', int('--workers', 1), Math.min(2, availableParallelism()))
    .option('--json', 'one JSON object instead of text');
  program.parse();
  const o = program.opts<{ seeds: number; from: number; seed?: number; mutant?: string; listMutants?: boolean; regressions?: boolean; workers: number; json?: boolean; ha?: boolean; scenario?: Scenario }>();

  if (o.listMutants) {
    for (const m of MUTANTS) console.log(`${m.name.padEnd(30)} ${scenarioOf(m) === 'grid' ? '' : `[--scenario ${scenarioOf(m)}] `}${m.what}; caught by: ${m.caughtBy}`);
    return;
  }
  const mutant = o.mutant ?? null;
  if (mutant !== null && !mutantNamed(mutant)) {
    console.error(`sim: unknown mutant ${JSON.stringify(mutant)}; --list-mutants names them`);
    process.exitCode = 2;
    return;
  }
  const mutantScenario = mutant === null ? null : scenarioOf(mutantNamed(mutant)!);
  if (o.scenario !== undefined && mutantScenario !== null && o.scenario !== mutantScenario) {
    console.error(`sim: mutant ${mutant} runs in --scenario ${mutantScenario}, not ${o.scenario}`);
    process.exitCode = 2;
    return;
  }
  const scenario: Scenario = o.scenario ?? mutantScenario ?? 'grid';
  if (o.seed !== undefined && scenario === 'containers') {
    const m = mutant === null ? undefined : mutantNamed(mutant);
    const r = runContainersSeed({ seed: o.seed, trace: true, mutants: m ? new Set([m.name]) : undefined, faults: m?.containerFaults });
    if (o.json) console.log(JSON.stringify(r));
    else {
      for (const line of r.trace) console.log(line);
      console.log(`sim: seed ${r.seed} ${r.ok ? 'passed' : `failed: ${r.violation}`} (${r.events} events, ${r.simMs} ms simulated)`);
    }
    process.exitCode = r.ok === (mutant === null) ? 0 : 1;
    return;
  }
  if (o.seed !== undefined) {
    const m = mutant === null ? undefined : mutantNamed(mutant);
    const r = runSeed({ seed: o.seed, trace: true, mutants: m ? new Set([m.name]) : undefined, faults: m?.faults, ...(o.ha ? { ha: true } : {}) });
    if (o.json) console.log(JSON.stringify({ ...r, faults: r.faults }, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
    else {
      for (const line of r.trace) console.log(line);
      console.log(`sim: seed ${r.seed} ${r.ok ? 'passed' : `failed: ${r.violation}`} (${r.events} events, ${r.simMs} ms simulated)`);
    }
    // exitCode, not exit(): stdout to a pipe is written asynchronously, and exit() would cut a long trace.
    process.exitCode = r.ok === (mutant === null) ? 0 : 1;
    return;
  }
  if (o.regressions) return runRegressions(o.json ?? false, o.workers);

  const seeds = Array.from({ length: o.seeds }, (_, i) => o.from + i);
  const t0 = performance.now();
  const { results } = await runParallel({ seeds, mutant, stopAtFirst: mutant !== null, ha: o.ha ?? false, scenario }, o.workers);
  report(results, mutant, (performance.now() - t0) / 1000, o.json ?? false, o.ha ?? false, scenario);
}

function report(results: BatchResult['results'], mutant: string | null, seconds: number, json: boolean, ha: boolean, scenario: Scenario): void {
  const failed = results.filter((r) => !r.ok);
  const faults: Record<string, number> = {};
  for (const r of results) for (const [k, n] of Object.entries(r.faultCounts)) faults[k] = (faults[k] ?? 0) + n;
  const events = results.reduce((a, r) => a + r.events, 0);
  const injected = Object.entries(faults).filter(([k]) => k !== 'failed-write' && !k.startsWith('stat:')).reduce((a, [, n]) => a + n, 0);
  if (json) {
    console.log(JSON.stringify({
      ...(scenario === 'grid' ? {} : { scenario }), seeds: results.length, failed: failed.length, events, faults, failedSeeds: failed.map((r) => r.seed),
      ...(mutant ? { mutant, caught: failed.length > 0, violation: failed[0]?.violation ?? null } : {}),
      seconds: Number(seconds.toFixed(2)), seedsPerSecond: Number((results.length / seconds).toFixed(1)),
    }));
  } else {
    for (const r of failed) console.log(`seed ${r.seed} failed: ${r.violation}\n  replay: ${replayCommand(r.seed, mutant, ha, scenario)}`);
    if (mutant) console.log(failed.length > 0 ? `mutant ${mutant} caught by seed ${failed[0]!.seed}` : `mutant ${mutant} NOT caught in ${results.length} seeds`);
    console.log(`sim: ${results.length} seeds, ${failed.length} failed, ${events} events, ${injected} faults injected (${(results.length / seconds).toFixed(1)} seeds/s)`);
  }
  const ok = mutant === null ? failed.length === 0 : failed.length > 0;
  process.exitCode = ok ? 0 : 1;
}

/**
 * Every regression seed must pass; one that names the old behaviour (a
 * mutant) must also still fail with it, which shows the seed still reaches
 * its scenario (a change of the fault generator that loses it is caught here).
 */
async function runRegressions(json: boolean, workers: number): Promise<void> {
  const list = regressions();
  const t0 = performance.now();
  const bad: string[] = [];
  for (const scenario of ['grid', 'containers'] as const) {
    const seeds = [...new Set(list.filter((r) => (r.scenario ?? 'grid') === scenario).map((r) => r.seed))];
    if (seeds.length === 0) continue;
    const plain = await runParallel({ seeds, mutant: null, stopAtFirst: false, ha: false, scenario }, workers);
    for (const r of plain.results) if (!r.ok) bad.push(`regression seed ${r.seed} failed again: ${r.violation}\n  replay: ${replayCommand(r.seed, null, false, scenario)}`);
  }
  for (const e of list.filter((x) => x.mutant)) {
    // With the mutant's own fault profile and scenario, exactly as `--mutant NAME --seed S` replays it.
    const m = mutantNamed(e.mutant!);
    const ok = (e.scenario ?? 'grid') === 'containers'
      ? runContainersSeed({ seed: e.seed, mutants: new Set([e.mutant!]), faults: m?.containerFaults }).ok
      : runSeed({ seed: e.seed, mutants: new Set([e.mutant!]), faults: m?.faults }).ok;
    if (ok) bad.push(`regression seed ${e.seed} no longer reproduces ${e.mutant} (${e.why}): re-derive the list`);
  }
  for (const line of bad) console.log(line);
  const seconds = (performance.now() - t0) / 1000;
  if (json) console.log(JSON.stringify({ regressions: list.length, failed: bad.length, problems: bad, seconds: Number(seconds.toFixed(2)) }));
  else console.log(`sim: ${list.length} regression seeds, ${bad.length} failed`);
  process.exitCode = bad.length === 0 ? 0 : 1;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : String(err));
  process.exit(2);
});
