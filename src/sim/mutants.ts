import type { FaultShape } from './faults.js';
import type { ContainerFaultShape } from './containers/faults.js';

/** The simulator's scenarios: the whole grid (default), or the page ownership protocol alone (issue 9). */
export type Scenario = 'grid' | 'containers';

// Mutants: deliberately broken variants of the cores (switched on through
// their configs' `mutants` set, never in a real process) and of the old
// shells' behaviour. Each must be caught by the checkers within the CI seed
// budget; `faults` narrows the schedule to the kinds that expose it, the
// way a named scenario would.

export interface Mutant {
  name: string;
  what: string;
  /** What the simulator should report when it catches it (the violation's invariant, or a core's own crash). */
  caughtBy: string;
  faults?: FaultShape;
  /** The scenario it runs in (default: grid). */
  scenario?: Scenario;
  containerFaults?: ContainerFaultShape;
}

export const MUTANTS: readonly Mutant[] = [
  { name: 'commit-before-all-prepared', what: 'the round core sends COMMIT after the first PREPARED', caughtBy: 'core invariant|crash' },
  { name: 'restore-before-lease-lapse', what: 'a cluster restores a lost node\'s units without waiting out its lease', caughtBy: '§3.1 one owner', faults: { kinds: ['partition-agent'] } },
  { name: 'skip-fence-on-lease-loss', what: 'an agent whose lease lapsed keeps its units running', caughtBy: '§3.1 one owner', faults: { kinds: ['partition-agent'] } },
  { name: 'skip-thaw-on-abort', what: 'an agent aborting a round leaves its units frozen', caughtBy: '§3.4 always thaw', faults: { kinds: ['agent-crash', 'partition-agent'] } },
  { name: 'reuse-epoch-number', what: 'the grid numbers a round from its last line, not the highest epoch it used', caughtBy: 'epochs are never reused', faults: { kinds: ['agent-crash', 'partition-agent'] } },
  { name: 'agent-cleans-shared-store', what: 'a starting agent deletes epochs without a manifest from the shared store (the old recoverStore)', caughtBy: '§3.3 atomic commit', faults: { kinds: ['agent-crash'], count: 14, durationMs: { min: 20, max: 120 } } },
  { name: 'restore-onto-dead-node', what: 'a restore whose target died fails the job instead of re-planning, and the grid ignores a failed share (the old pair)', caughtBy: 'liveness', faults: { kinds: ['agent-crash-pair'] } },
  { name: 'no-walk-back', what: 'a coordinated recovery fails on a damaged newest epoch instead of walking back', caughtBy: 'liveness', faults: { kinds: ['corrupt-newest'] } },
  { name: 'blame-own-pause', what: 'a coordinator\'s detector takes its own pause (GC, VM, SIGSTOP) for its members\' silence', caughtBy: 'liveness', faults: { kinds: ['pause-grid', 'pause-cluster'] } },
  { name: 'complete-without-final-epoch', what: 'the grid marks a job completed without a final line holding its end state', caughtBy: '§3.5 same answer' },
  { name: 'complete-without-final-round', what: 'a cluster marks its local job completed once every node reported completion, with no final round holding its end state (C5)', caughtBy: '§3.5 same answer' },
  { name: 'resume-forgets-epochs', what: 'a restarted cluster numbers a resumed local job\'s rounds from its newest committed epoch, not the highest its job table says were used (C3)', caughtBy: 'epochs are never reused', faults: { kinds: ['cluster-crash'], count: 4 } },
  { name: 'gc-ignores-chain', what: 'garbage collection keeps the newest K epochs but not the epochs their incremental chains need', caughtBy: 'gc retained' },
  { name: 'cancel-answers-before-stop', what: 'job control answers a cancel "stopped" before the nodes (or clusters) answered their stops', caughtBy: 'operator stop', faults: { kinds: ['agent-crash'], count: 1, operator: ['cancel-restore'] } },
  { name: 'delete-forgets-epochs', what: 'a deleted job leaves no memory of its epochs: the job submitted again under its id numbers from 1', caughtBy: 'epochs are never reused', faults: { kinds: ['agent-crash'], count: 1, operator: ['delete-resubmit'] } },
  { name: 'cluster-accepts-stale-leader', what: 'a cluster acts on a grid call whose leader term is older than one it has heard from (a deposed leader\'s late message), and takes its heartbeat answers\' leases', caughtBy: 'stale leader', faults: { kinds: ['leader-isolated'], count: 1, ha: true } },
  { name: 'readonly-vote-with-pages', what: 'an agent votes read-only (PREPARED with an empty part, no COMMIT wanted) although its snapshot staged pages, so they are never written', caughtBy: '§3.5 same answer' },
  { name: 'coordinator-skips-commit', what: 'a cluster takes every PREPARED for a read-only vote: it sends no COMMIT and writes a manifest naming parts no agent wrote', caughtBy: '§3.3 atomic commit' },
  { name: 'sender-drops-before-ack', scenario: 'containers', what: 'an owner that hands a page over drops it at once instead of keeping it (and resending) until the receiver acknowledges', caughtBy: 'one owner|lost write', containerFaults: { kinds: ['lose-transfer', 'transfer-at-cut'] } },
  { name: 'requester-and-owner-both-save', scenario: 'containers', what: 'at a cut a node also saves the pages it owned when the freeze began, though they moved during the drain (seed case 1)', caughtBy: 'exactly once|saved content', containerFaults: { kinds: ['transfer-at-cut'] } },
  { name: 'no-gate-during-freeze', scenario: 'containers', what: 'a frozen node keeps starting protocol actions (requests, evictions, queued grabs) for the job\'s containers', caughtBy: 'exactly once|saved content', containerFaults: { kinds: ['evict-at-cut'] } },
  { name: 'stale-copy-after-invalidate', scenario: 'containers', what: 'a node acknowledges an invalidation but keeps its shared copy readable', caughtBy: 'stale copy|stale read' },
  { name: 'gc-forgets-grid-lines', what: 'garbage collection keeps only the job\'s K newest epochs of a grid job, not the grid\'s recovery lines', caughtBy: 'gc retained' },
];

export function scenarioOf(m: Mutant): Scenario {
  return m.scenario ?? 'grid';
}

export function mutantNamed(name: string): Mutant | undefined {
  return MUTANTS.find((m) => m.name === name);
}
