import type { EventHub } from '../runtime/event-hub.js';
import type { GridCoordinator, GridEvents } from './coordinator.js';

// The grid coordinator's events as its Watch readers see them: each callback
// still reaches `inner` (the metrics), and becomes one hub event. Subjects:
// the cluster for member events, the grid epoch for rounds, the grid for job
// states and recoveries.

export function gridWatchEvents(hub: Pick<EventHub, 'emit'>, inner: GridEvents, gridId: string, coordinator: () => GridCoordinator | null): GridEvents {
  return {
    roundFinished(o) {
      inner.roundFinished(o);
      if (o.kind === 'committed') {
        hub.emit({
          kind: 'round', jobId: o.jobId, subject: String(o.epoch), to: 'committed', epoch: o.epoch,
          detail: `grid epoch ${o.epoch} committed (${o.full ? 'full' : `incremental on ${o.parentEpoch}`}) over ${o.participants} clusters: ${o.pages} pages, ${o.bytes} bytes in ${o.timings.totalMs.toFixed(1)} ms`,
        });
      } else {
        hub.emit({ kind: 'round', jobId: o.jobId, subject: String(o.epoch), from: o.phase, to: 'aborted', epoch: o.epoch, detail: `grid epoch ${o.epoch} aborted in ${o.phase}: ${o.reason}` });
      }
    },
    clusterVerdict(c) {
      inner.clusterVerdict(c);
      hub.emit({ kind: 'member', subject: c.peer, from: c.from, to: c.to, detail: `cluster ${c.peer} ${c.to} (phi ${c.phi.toFixed(1)}, silent ${Math.round(c.silenceMs)} ms)` });
    },
    recovered(jobId, ms, ok) {
      inner.recovered(jobId, ms, ok);
      const job = coordinator()?.jobs.get(jobId);
      hub.emit({
        kind: 'recovery', jobId, subject: gridId, from: 'started', to: ok ? 'done' : 'failed',
        detail: `${job?.lastError ?? `job ${jobId}: recovery ${ok ? 'done' : 'failed'}`} (${Math.round(ms)} ms)`,
      });
    },
    clusterRegistered(clusterId, incarnation, address) {
      hub.emit({ kind: 'member', subject: clusterId, to: 'alive', detail: `cluster ${clusterId} registered (incarnation ${incarnation}, ${address})` });
    },
    jobPlaced(jobId, clusters) {
      hub.emit({ kind: 'job', jobId, subject: gridId, to: 'running', detail: `grid job ${jobId} started: ${[...clusters].map(([u, c]) => `${u}@${c}`).join(' ')}` });
    },
    jobState(job, from, to) {
      hub.emit({ kind: 'job', jobId: job.jobId, subject: gridId, from, to, detail: `grid job ${job.jobId}: ${from} → ${to}` });
    },
    roundStarted(r) {
      hub.emit({
        kind: 'round', jobId: r.jobId, subject: String(r.epoch), to: 'started', epoch: r.epoch,
        detail: `grid epoch ${r.epoch} started (${r.full ? 'full' : `incremental on ${r.parentEpoch}`}) over ${r.participants.join(', ')}`,
      });
    },
    recoveryStarted(jobId, reason) {
      hub.emit({ kind: 'recovery', jobId, subject: gridId, to: 'started', detail: reason });
    },
  };
}
