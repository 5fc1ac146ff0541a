import type { GridServiceServer } from '../gen/gridckpt/v1/grid.js';
import { asSelf, type AccessTable } from '../common/authz.js';

// Who may call the grid coordinator (docs/security.md): clusters register
// and heartbeat, each only as itself; operators do the rest.

const clusterSelf = asSelf<{ clusterId: string }>('cluster id', (r) => r.clusterId);

export const GRID_ACCESS: AccessTable<GridServiceServer> = {
  registerCluster: { cluster: clusterSelf },
  clusterHeartbeat: { cluster: clusterSelf },
  submitGridJob: { operator: true },
  checkpointGridJob: { operator: true },
  controlGridJob: { operator: true },
  gridStatus: { operator: true },
  watch: { operator: true },
};
