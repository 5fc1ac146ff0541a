import type { Logger } from '../common/log.js';
import type { EventHub } from '../runtime/event-hub.js';
import type { ClusterEvent } from './core/supervisor-types.js';
import type { ClusterMetrics } from './metrics.js';

// The cluster core's events as Watch readers, the metrics and the log see
// them: one hub event each. Subjects: the node for member and node-recovery
// events, the epoch for rounds, this cluster for job states.

export interface EventContext {
  hub: Pick<EventHub, 'emit'>;
  metrics: ClusterMetrics;
  log: Logger;
  clusterId: string;
  /** The job's newest committed epoch and last error now (for recovery events). */
  jobNow(jobId: string): { lastEpoch: bigint | null; lastError: string; placement: ReadonlyMap<string, string> } | null;
}

export function publishClusterEvents(c: EventContext, events: readonly ClusterEvent[]): void {
  for (const e of events) publishOne(c, e);
}

function publishOne(c: EventContext, e: ClusterEvent): void {
  const { hub } = c;
  switch (e.kind) {
    case 'nodeRegistered':
      hub.emit({ kind: 'member', subject: e.nodeId, to: 'alive', detail: `node ${e.nodeId} registered (incarnation ${e.incarnation})` });
      return;
    case 'nodeVerdict': {
      const v = e.change;
      c.metrics.nodeVerdict(v);
      c.log.warn({ node: v.peer, from: v.from, to: v.to, phi: v.phi, silenceMs: v.silenceMs }, `node ${v.to}`);
      hub.emit({ kind: 'member', subject: v.peer, from: v.from, to: v.to, detail: `node ${v.peer} ${v.to} (phi ${v.phi.toFixed(1)}, silent ${Math.round(v.silenceMs)} ms)` });
      return;
    }
    case 'jobState': {
      if (e.to === 'fenced') c.metrics.jobFenced(e.jobId);
      c.log.info({ jobId: e.jobId, from: e.from, to: e.to, reason: e.reason }, `job ${e.to}`);
      // A job's first event is its start: placed and running (its units all started), or failed.
      if (e.to === 'starting') return;
      const first = e.from === null || e.from === 'starting';
      const placement = first ? c.jobNow(e.jobId)?.placement : undefined;
      const detail = placement && e.to === 'running'
        ? `job ${e.jobId} placed: ${[...placement].map(([u, n]) => `${u}@${n}`).join(' ')}`
        : `job ${e.jobId}: ${first ? 'new' : e.from} → ${e.to}${e.reason ? ` (${e.reason})` : ''}`;
      hub.emit({ kind: 'job', jobId: e.jobId, subject: c.clusterId, ...(first ? {} : { from: e.from! }), to: e.to, detail });
      return;
    }
    case 'shareCompleted':
      // Shown as the share's state change, as Watch readers know it; the core's job runs on for the grid's final round.
      return publishOne(c, { kind: 'jobState', jobId: e.jobId, from: 'running', to: 'completed', reason: e.reason });
    case 'jobPlaced':
      c.log.info({ jobId: e.jobId, placement: e.placement }, 'job placed');
      return;
    case 'jobForgotten':
      c.log.info({ jobId: e.jobId, highestEpoch: String(e.highestEpoch) }, 'job deleted');
      hub.emit({ kind: 'job', jobId: e.jobId, subject: c.clusterId, to: 'deleted', detail: `job ${e.jobId} deleted (its epochs stay in the store; a job under its id numbers above epoch ${e.highestEpoch})` });
      return;
    case 'roundStarted':
      hub.emit({
        kind: 'round', jobId: e.jobId, subject: String(e.epoch), to: 'started', epoch: e.epoch,
        detail: `epoch ${e.epoch} started (${e.full ? 'full' : `incremental on ${e.parentEpoch}`}) over ${e.participants.join(', ')}`,
      });
      return;
    case 'roundFinished': {
      const o = e.outcome;
      c.metrics.roundFinished(o);
      if (o.kind === 'committed') {
        hub.emit({
          kind: 'round', jobId: o.jobId, subject: String(o.epoch), to: 'committed', epoch: o.epoch,
          detail: `epoch ${o.epoch} committed (${o.full ? 'full' : `incremental on ${o.parentEpoch}`}): ${o.pages} pages, ${o.bytes} bytes from ${o.participants} nodes in ${o.timings.totalMs.toFixed(1)} ms`,
        });
      } else {
        c.log.warn({ jobId: o.jobId, epoch: String(o.epoch), phase: o.phase, reason: o.reason }, 'round aborted');
        hub.emit({ kind: 'round', jobId: o.jobId, subject: String(o.epoch), from: o.phase, to: 'aborted', epoch: o.epoch, detail: `epoch ${o.epoch} aborted in ${o.phase}: ${o.reason}` });
      }
      return;
    }
    case 'gridLine':
      return;
    case 'staleGridCall':
      c.metrics.staleGridCall();
      c.log.warn({ jobId: e.jobId, request: e.request, reason: e.reason }, 'a grid call from a deposed grid refused');
      hub.emit({ kind: 'member', jobId: e.jobId, subject: 'grid', to: 'refused', detail: `${e.request} of job ${e.jobId} refused: ${e.reason}` });
      return;
    case 'gridRestored':
      c.log.info({ jobId: e.jobId, epoch: e.epoch === null ? null : String(e.epoch) }, 'the grid restores the job');
      return;
    case 'recoveryStarted':
      c.log.warn({ jobId: e.jobId, node: e.nodeId, reason: e.reason }, 'recovery started');
      hub.emit({ kind: 'recovery', jobId: e.jobId, subject: e.nodeId ?? c.clusterId, to: 'started', detail: e.reason });
      return;
    case 'recovered': {
      c.metrics.recovered(e.jobId, e.ms, e.ok);
      const job = c.jobNow(e.jobId);
      const epoch = job?.lastEpoch ?? 0n;
      c.log.info({ jobId: e.jobId, ms: Math.round(e.ms), ok: e.ok, epoch: String(epoch) }, e.ok ? 'job recovered' : 'recovery failed');
      hub.emit({
        kind: 'recovery', jobId: e.jobId, subject: String(epoch), from: 'started', to: e.ok ? 'done' : 'failed', epoch,
        detail: e.ok ? `job ${e.jobId} recovered in ${Math.round(e.ms)} ms, from epoch ${job?.lastEpoch ?? 'none'}` : (job?.lastError || `job ${e.jobId}: recovery failed`),
      });
      return;
    }
  }
}
