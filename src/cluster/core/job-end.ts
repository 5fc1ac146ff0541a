// How the end of a running job reaches the cluster coordinator (push, not
// poll; the simulator's supervisor core has the same semantics, see
// Heartbeat.jobs in protocol/messages.ts). Every agent heartbeat carries the
// states of the agent's jobs, each tagged with the gen of the start it
// belongs to: the gen the coordinator put in the StartJob or Restore that
// made the agent's current run of the job. An EndWatch follows one arming of
// one job (from its start or restart until it ends or is disarmed) and turns
// each node's reports into at most one decision. Reports repeat on every
// beat (level, not edge), so a lost beat loses nothing and a report that is
// ignored now is judged again on the next beat.
//
// Invariants (tests cite them as E1..E4):
//  E1. A report counts only if its gen is the gen of the last start the
//      coordinator sent that node for the job: a report on an earlier start
//      (one sent before a restore, or before a restart in place) is stale.
//      The node's incarnation is checked before (a beat of an older one is
//      refused whole). A node this coordinator has started nothing on for
//      the job (a job it took back from its job table after a restart) has
//      no gen yet: its first report pins it, since every beat it receives
//      was sent after the agent registered with it.
//  E2. The job's units completed only when every node of the job reported
//      completed for its current start.
//  E3. A watch decides at most once: after all-completed, fenced, ended or
//      lost, it ignores every later report.
//  E4. A job missing from a full report (reports_jobs) is lost only when
//      the coordinator has started nothing on that node: otherwise the beat
//      may have been sent before its start reached the agent (a restarted
//      agent is seen when it registers with a new incarnation).

export type AgentJobState = 'running' | 'restoring' | 'completed' | 'failed' | 'stopped' | 'fenced';

export const AGENT_JOB_STATES: readonly AgentJobState[] = ['running', 'restoring', 'completed', 'failed', 'stopped', 'fenced'];

/** One job as an agent reported it on a heartbeat. */
export interface JobReport {
  jobId: string;
  state: AgentJobState;
  gen: bigint;
  lastError: string;
}

export type EndDecision =
  /** Nothing to do: still running, a node's completion noted, or the watch already decided. */
  | { kind: 'none' }
  /** E1: a report on an earlier start than the one the coordinator last sent. */
  | { kind: 'stale'; nodeId: string; reportedGen: bigint; startGen: bigint }
  /** E2: every node of the job reported completed. */
  | { kind: 'all-completed' }
  /** The node's lease lapsed: its units were killed. */
  | { kind: 'fenced'; nodeId: string }
  /** The node's units ended some other way. */
  | { kind: 'ended'; nodeId: string; state: 'failed' | 'stopped'; lastError: string }
  /** E4: the agent has no record of the job. */
  | { kind: 'lost'; nodeId: string };

export class EndWatch {
  private readonly completed = new Set<string>();
  private decided = false;

  /**
   * nodes: the job's nodes at this arming. startGens: the job's gen per node
   * (the coordinator's own map: unknown nodes are pinned in it, E1).
   */
  constructor(readonly nodes: readonly string[], private readonly startGens: Map<string, bigint>) {
    if (nodes.length === 0) throw new Error('an end watch needs at least one node');
  }

  /** One node's beat: its report on the job, or null when the job was not in it (full says the list was complete). */
  onBeat(nodeId: string, report: JobReport | null, full: boolean): EndDecision {
    if (this.decided || !this.nodes.includes(nodeId)) return { kind: 'none' };
    if (report === null) {
      if (!full || this.startGens.has(nodeId)) return { kind: 'none' };
      return this.decide({ kind: 'lost', nodeId });
    }
    const startGen = this.startGens.get(nodeId);
    if (startGen === undefined) this.startGens.set(nodeId, report.gen);
    else if (report.gen !== startGen) return { kind: 'stale', nodeId, reportedGen: report.gen, startGen };
    switch (report.state) {
      case 'running':
      case 'restoring':
        return { kind: 'none' };
      case 'completed':
        this.completed.add(nodeId);
        return this.nodes.every((n) => this.completed.has(n)) ? this.decide({ kind: 'all-completed' }) : { kind: 'none' };
      case 'fenced':
        return this.decide({ kind: 'fenced', nodeId });
      case 'failed':
      case 'stopped':
        return this.decide({ kind: 'ended', nodeId, state: report.state, lastError: report.lastError });
    }
  }

  /** Nodes whose units completed (for this start). */
  completedOn(): string[] {
    return [...this.completed].sort();
  }

  isDecided(): boolean {
    return this.decided;
  }

  checkInvariants(): void {
    for (const n of this.completed) if (!this.nodes.includes(n)) throw new Error(`E2: completion noted for ${n}, not a node of the job`);
  }

  private decide(d: EndDecision): EndDecision {
    this.decided = true;
    return d;
  }
}
