import type { NodeAgentServiceServer } from '../gen/gridckpt/v1/node_agent.js';
import type { AccessTable } from '../common/authz.js';

// Who may call a node agent (docs/security.md). Under a cluster only its
// coordinator starts, stops, restores and checkpoints jobs: an operator's
// start there would run commands the cluster never placed. A standalone
// agent has no coordinator, so its operator drives it.

export function agentAccess(underCluster: boolean): AccessTable<NodeAgentServiceServer> {
  const driver = underCluster ? { cluster: true } as const : { cluster: true, operator: true } as const;
  const operator = { operator: true } as const;
  return {
    startJob: driver,
    stopJob: driver,
    deleteJob: driver,
    restore: driver,
    checkpoint: underCluster ? {} : operator,
    prepareCheckpoint: { cluster: true },
    commitCheckpoint: { cluster: true },
    abortCheckpoint: { cluster: true },
    listEpochs: operator,
    verifyEpoch: operator,
    status: operator,
    waitJob: operator,
    readContainer: operator,
    watch: operator,
  };
}
