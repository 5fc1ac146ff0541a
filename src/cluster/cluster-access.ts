import type { ClusterServiceServer } from '../gen/gridckpt/v1/cluster.js';
import { asSelf, type AccessTable } from '../common/authz.js';

// Who may call a cluster coordinator (docs/security.md): its agents, each
// only as itself; the grid, for its rounds and jobs; operators, for status,
// watching, manual rounds and jobs of this cluster alone.

const agentSelf = asSelf<{ nodeId: string }>('node id', (r) => r.nodeId);

export const CLUSTER_ACCESS: AccessTable<ClusterServiceServer> = {
  registerNode: { agent: agentSelf },
  heartbeat: { agent: agentSelf },
  reportJobs: { agent: agentSelf },
  // A grid-managed job comes from the grid only; an operator submits jobs of this cluster alone.
  submitJob: { grid: true, operator: (r) => (r.gridManaged ? 'only the grid submits grid-managed jobs' : null) },
  checkpointJob: { operator: true },
  controlJob: { operator: true },
  clusterStatus: { operator: true },
  prepareRound: { grid: true },
  commitRound: { grid: true },
  abortRound: { grid: true },
  restoreGridJob: { grid: true },
  stopGridJob: { grid: true },
  watch: { operator: true },
};
