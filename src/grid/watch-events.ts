import type { Logger } from '../common/log.js';
import type { EventHub } from '../runtime/event-hub.js';
import type { GridEvent } from './core/supervisor-types.js';
import type { GridMetrics } from './metrics.js';

// The grid core's events as Watch readers, the metrics and the log see them:
// one hub event each. Subjects: the cluster for member events, the grid
// epoch for rounds, the grid for job states and recoveries.

export interface GridEventContext {
  hub: Pick<EventHub, 'emit'>;
  metrics: GridMetrics;
  log: Logger;
  gridId: string;
  /** A registered cluster's address (for its member event). */
  addressOf(clusterId: string): string;
}

export function publishGridEvents(c: GridEventContext, events: readonly GridEvent[]): void {
  for (const e of events) publishOne(c, e);
}

function publishOne(c: GridEventContext, e: GridEvent): void {
  const { hub, gridId } = c;
  switch (e.kind) {
    case 'clusterRegistered':
      hub.emit({ kind: 'member', subject: e.clusterId, to: 'alive', detail: `cluster ${e.clusterId} registered (incarnation ${e.incarnation}, ${c.addressOf(e.clusterId)})` });
      return;
    case 'clusterVerdict': {
      const v = e.change;
      c.metrics.clusterVerdict(v);
      c.log.warn({ cluster: v.peer, from: v.from, to: v.to, phi: v.phi }, `cluster ${v.to}`);
      hub.emit({ kind: 'member', subject: v.peer, from: v.from, to: v.to, detail: `cluster ${v.peer} ${v.to} (phi ${v.phi.toFixed(1)}, silent ${Math.round(v.silenceMs)} ms)` });
      return;
    }
    case 'jobPlaced':
      c.log.info({ jobId: e.jobId, clusters: e.clusters }, 'grid job placed');
      hub.emit({ kind: 'job', jobId: e.jobId, subject: gridId, to: 'running', detail: `grid job ${e.jobId} started: ${Object.entries(e.clusters).map(([u, cl]) => `${u}@${cl}`).join(' ')}` });
      return;
    case 'jobState': {
      c.log.info({ jobId: e.jobId, from: e.from, to: e.to, reason: e.reason }, `grid job ${e.to}`);
      // A job's first state is its placement's event (jobPlaced).
      if (e.from === null) return;
      hub.emit({ kind: 'job', jobId: e.jobId, subject: gridId, from: e.from, to: e.to, detail: `grid job ${e.jobId}: ${e.from} → ${e.to}${e.reason ? ` (${e.reason})` : ''}` });
      return;
    }
    case 'jobForgotten':
      c.log.info({ jobId: e.jobId, highestEpoch: String(e.highestEpoch) }, 'grid job deleted');
      hub.emit({ kind: 'job', jobId: e.jobId, subject: gridId, to: 'deleted', detail: `grid job ${e.jobId} deleted (its epochs stay in the clusters' stores; a job under its id numbers above epoch ${e.highestEpoch})` });
      return;
    case 'roundStarted':
      hub.emit({
        kind: 'round', jobId: e.jobId, subject: String(e.epoch), to: 'started', epoch: e.epoch,
        detail: `grid epoch ${e.epoch} started (${e.full ? 'full' : `incremental on ${e.parentEpoch}`}) over ${e.participants.join(', ')}`,
      });
      return;
    case 'roundFinished': {
      const o = e.outcome;
      c.metrics.roundFinished(o);
      if (o.kind === 'committed') {
        hub.emit({
          kind: 'round', jobId: o.jobId, subject: String(o.epoch), to: 'committed', epoch: o.epoch,
          detail: `grid epoch ${o.epoch} committed (${o.full ? 'full' : `incremental on ${o.parentEpoch}`}) over ${o.participants} clusters: ${o.pages} pages, ${o.bytes} bytes in ${o.timings.totalMs.toFixed(1)} ms`,
        });
      } else {
        c.log.warn({ jobId: o.jobId, epoch: String(o.epoch), phase: o.phase, reason: o.reason }, 'grid round aborted');
        hub.emit({ kind: 'round', jobId: o.jobId, subject: String(o.epoch), from: o.phase, to: 'aborted', epoch: o.epoch, detail: `grid epoch ${o.epoch} aborted in ${o.phase}: ${o.reason}` });
      }
      return;
    }
    case 'recoveryStarted':
      c.log.warn({ jobId: e.jobId, reason: e.reason }, 'grid recovery started');
      hub.emit({ kind: 'recovery', jobId: e.jobId, subject: gridId, to: 'started', detail: e.reason });
      return;
    case 'recovered':
      c.metrics.recovered(e.ms, e.ok);
      c.log[e.ok ? 'warn' : 'error']({ jobId: e.jobId, ms: Math.round(e.ms), ok: e.ok, detail: e.detail }, e.ok ? 'grid job recovered' : 'grid recovery failed');
      hub.emit({ kind: 'recovery', jobId: e.jobId, subject: gridId, from: 'started', to: e.ok ? 'done' : 'failed', detail: `${e.detail} (${Math.round(e.ms)} ms)` });
      return;
  }
}
