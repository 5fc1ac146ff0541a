import type { EventHub } from '../runtime/event-hub.js';
import type { ClusterCoordinator, ClusterEvents } from './coordinator.js';

// The cluster coordinator's events as its Watch readers see them: each
// callback still reaches `inner` (the metrics), and becomes one hub event.
// Subjects: the node for member and node-recovery events, the epoch for
// rounds, this cluster for job states.

export function clusterWatchEvents(hub: Pick<EventHub, 'emit'>, inner: ClusterEvents, clusterId: string, coordinator: () => ClusterCoordinator | null): ClusterEvents {
  return {
    roundFinished(o) {
      inner.roundFinished(o);
      if (o.kind === 'committed') {
        hub.emit({
          kind: 'round', jobId: o.jobId, subject: String(o.epoch), to: 'committed', epoch: o.epoch,
          detail: `epoch ${o.epoch} committed (${o.full ? 'full' : `incremental on ${o.parentEpoch}`}): ${o.pages} pages, ${o.bytes} bytes from ${o.participants} nodes in ${o.timings.totalMs.toFixed(1)} ms`,
        });
      } else {
        hub.emit({ kind: 'round', jobId: o.jobId, subject: String(o.epoch), from: o.phase, to: 'aborted', epoch: o.epoch, detail: `epoch ${o.epoch} aborted in ${o.phase}: ${o.reason}` });
      }
    },
    nodeVerdict(c) {
      inner.nodeVerdict(c);
      hub.emit({ kind: 'member', subject: c.peer, from: c.from, to: c.to, detail: `node ${c.peer} ${c.to} (phi ${c.phi.toFixed(1)}, silent ${Math.round(c.silenceMs)} ms)` });
    },
    recovered(jobId, ms, ok) {
      inner.recovered(jobId, ms, ok);
      const job = coordinator()?.jobs.get(jobId);
      const epoch = job?.lastEpoch ?? 0n;
      hub.emit({
        kind: 'recovery', jobId, subject: String(epoch), from: 'started', to: ok ? 'done' : 'failed', epoch,
        detail: ok ? `job ${jobId} recovered in ${Math.round(ms)} ms, from epoch ${job?.lastEpoch ?? 'none'}` : (job?.lastError ?? `job ${jobId}: recovery failed`),
      });
    },
    jobFenced(jobId) {
      // The job's state change (to fenced) is the Watch event.
      inner.jobFenced(jobId);
    },
    nodeRegistered(nodeId, incarnation, address) {
      hub.emit({ kind: 'member', subject: nodeId, to: 'alive', detail: `node ${nodeId} registered (incarnation ${incarnation}, ${address})` });
    },
    jobPlaced(jobId, placement) {
      hub.emit({ kind: 'job', jobId, subject: clusterId, to: 'running', detail: `job ${jobId} placed: ${[...placement].map(([u, n]) => `${u}@${n}`).join(' ')}` });
    },
    jobState(job, from, to) {
      hub.emit({ kind: 'job', jobId: job.jobId, subject: clusterId, from, to, detail: `job ${job.jobId}: ${from} → ${to}` });
    },
    roundStarted(r) {
      hub.emit({
        kind: 'round', jobId: r.jobId, subject: String(r.epoch), to: 'started', epoch: r.epoch,
        detail: `epoch ${r.epoch} started (${r.full ? 'full' : `incremental on ${r.parentEpoch}`}) over ${r.participants.join(', ')}${r.holdAfterPrepare ? ', for the grid' : ''}`,
      });
    },
    recoveryStarted(jobId, nodeId, reason) {
      hub.emit({ kind: 'recovery', jobId, subject: nodeId, to: 'started', detail: reason });
    },
  };
}
