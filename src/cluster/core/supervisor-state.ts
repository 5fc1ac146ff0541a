import type { Verdict } from '../../detector/monitor.js';
import type { RoundCoordinator } from '../../protocol/core/round.js';
import type { AgentRequest, ClusterAnswer, MemberJobState, RestoreSource } from '../../protocol/messages.js';
import type { NodeCapacity } from './placement.js';
import type { ClusterJobState, ClusterStep, ClusterSupervisorConfig } from './supervisor-types.js';

// The cluster supervisor core's state (supervisor.ts holds the intuition and
// invariants C1..C7): its nodes, its jobs and its calls in flight, with the
// few primitives every part of the core shares — a call to an agent, an
// answer to the grid, a job's nodes and the nodes' free room. Internal to
// the core: only ClusterSupervisor owns one, and nothing outside the core
// sees it.

export interface NodeEntry {
  nodeId: string;
  incarnation: bigint;
  capacityUnits: number;
  verdict: Verdict;
  lastGrantMs: number;
  /** Job states the node last reported (push, on its heartbeat). */
  reported: Map<string, MemberJobState>;
}

export interface Restart {
  reason: string;
  attempt: number;
  phase: 'stopping' | 'leaseWait' | 'restoring';
  epoch: bigint | null;
  /** Nodes whose units move; they must be dead before the restore (C1). */
  lost: Set<string>;
  waiting: Set<number>;
  safeAtMs: number;
  /** A grid call answered when the restart ends. */
  answer: number | null;
  adopt: RestoreSource[];
}

export interface Job {
  jobId: string;
  units: string[];
  state: ClusterJobState;
  placement: Map<string, string>;
  committed: bigint[];
  badEpochs: Set<bigint>;
  round: RoundCoordinator;
  restart: Restart | null;
  gridLeaseUntilMs: number;
  /** Grid calls waiting on the round: prepare answers prepared, commit answers committed. */
  gridPrepare: number | null;
  gridCommit: number | null;
  lastError: string;
  allDoneAtMs: number | null;
  /** The gen of the last start sent to each node (its reports must carry it) and of the grid's last submit or restore. */
  startGens: Map<string, number>;
  gridGen: number;
  /** Nodes whose PREPARED of the running round said every unit had exited. */
  doneAtCut: Set<string>;
  /** After any restart the next epoch is full: moved or adopted units' pages are in no epoch of this store's chain. */
  needsFull: boolean;
}

export type Pending = { jobId: string; node: string; what: 'round' | 'restart' | 'stop'; epoch: bigint | null; kind: AgentRequest['kind'] };

export class ClusterState {
  readonly nodes = new Map<string, NodeEntry>();
  readonly jobs = new Map<string, Job>();
  readonly pending = new Map<number, Pending>();
  nextReq = 1;
  nowMs = 0;

  constructor(readonly config: ClusterSupervisorConfig) {}

  mutant(name: string): boolean {
    return this.config.mutants?.has(name) ?? false;
  }

  callAgent(out: ClusterStep, node: string, req: AgentRequest, jobId: string, what: Pending['what'], epoch: bigint | null): number {
    const reqId = this.nextReq++;
    this.pending.set(reqId, { jobId, node, what, epoch, kind: req.kind });
    out.send.push({ to: node, call: { reqId, from: this.config.clusterId, incarnation: this.config.incarnation, req } });
    return reqId;
  }

  answerGrid(out: ClusterStep, reqId: number, answer: ClusterAnswer): void {
    out.reply.push({ to: 'grid', kind: 'answer', reqId, answer });
  }

  /** Best effort: a node that misses it is its lease's business. */
  stopEverywhere(job: Job, out: ClusterStep): void {
    for (const n of this.nodesOf(job)) this.callAgent(out, n, { kind: 'stopJob', jobId: job.jobId, gen: this.nextReq }, job.jobId, 'stop', null);
  }

  nodesOf(job: Job): string[] {
    return [...new Set(job.placement.values())].sort();
  }

  /** Free room of each registered node, not counting this job's own units. */
  capacities(except: Job | null): NodeCapacity[] {
    const placed = new Map<string, number>();
    for (const j of this.jobs.values()) {
      if (j === except || !isLive(j)) continue;
      for (const n of j.placement.values()) placed.set(n, (placed.get(n) ?? 0) + 1);
    }
    return [...this.nodes.values()].map((n) => ({ nodeId: n.nodeId, capacityUnits: n.capacityUnits, placedUnits: placed.get(n.nodeId) ?? 0 }));
  }
}

export function isLive(j: Job): boolean {
  return j.state === 'running' || j.state === 'recovering' || j.state === 'starting';
}
