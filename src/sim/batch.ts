import { runSeed, type SimResult } from './run.js';
import { mutantNamed, scenarioOf, type Scenario } from './mutants.js';
import { runContainersSeed } from './containers/run.js';

// A batch of seeds, run in one thread: what a worker (or the main thread) does.

export interface BatchSpec {
  seeds: number[];
  mutant: string | null;
  /** Stop at the first failing seed (a mutant run only needs one). */
  stopAtFirst: boolean;
  /** Three grid coordinators over the simulated etcd (a mutant's faults may ask for it too). */
  ha?: boolean;
  /** Default: the mutant's scenario, else the grid. */
  scenario?: Scenario;
}

export interface BatchResult {
  results: Array<Omit<SimResult, 'trace' | 'faults'>>;
}

export function runBatch(spec: BatchSpec): BatchResult {
  const m = spec.mutant === null ? undefined : mutantNamed(spec.mutant);
  const results: BatchResult['results'] = [];
  const scenario = spec.scenario ?? (m ? scenarioOf(m) : 'grid');
  for (const seed of spec.seeds) {
    const r = scenario === 'containers'
      ? runContainersSeed({ seed, mutants: m ? new Set([m.name]) : undefined, faults: m?.containerFaults })
      : runSeed({ seed, mutants: m ? new Set([m.name]) : undefined, faults: m?.faults, ...(spec.ha ? { ha: true } : {}) });
    results.push({ seed: r.seed, ok: r.ok, violation: r.violation, events: r.events, simMs: r.simMs, faultCounts: r.faultCounts });
    if (!r.ok && spec.stopAtFirst) break;
  }
  return { results };
}
