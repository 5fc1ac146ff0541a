import type { Command } from 'commander';
import { resolve } from 'node:path';
import { certPaths } from '../common/cert-paths.js';
import { checkName } from '../common/names.js';
import type { PeerIdentity } from '../common/tls-identity.js';
import { localGridIdentities } from '../demo/local-grid.js';
import { line, parseIntFlag, printJson, UsageError } from './output.js';

// `gridckpt certs init DIR`: a CA and the certificates of a local grid (the
// grid, each cluster, each agent and an operator), or of the ids named.

const collect = (v: string, acc: string[]) => [...acc, v];

export function addCertsCommand(program: Command): void {
  const certs = program.command('certs').description('certificates for mutual TLS (docs/security.md)');
  certs.command('init').description('make a CA in DIR (unless it holds one) and a certificate for each identity that has none')
    .argument('<dir>', 'where the CA and certificates go (made 0700; keys 0600)')
    .option('--grid-id <id>', 'the grid coordinator\'s id', 'grid-1')
    .option('--clusters <n>', 'clusters of the local grid: cluster-1 … cluster-N', '2')
    .option('--nodes <n>', 'agents per cluster: c<i>-node-1 … c<i>-node-N', '3')
    .option('--cluster <id>', 'one more cluster id (repeatable)', collect, [])
    .option('--agent <id>', 'one more agent (node) id (repeatable)', collect, [])
    .option('--operator <id>', 'the operator\'s id (repeatable; default admin)', collect, [])
    .option('--host <name>', 'a DNS name or IP the services are reached at besides loopback (repeatable)', collect, [])
    .option('--days <n>', 'validity of the certificates', '365')
    .option('--json', 'print JSON')
    .action(async (dir: string, o: { gridId: string; clusters: string; nodes: string; cluster: string[]; agent: string[]; operator: string[]; host: string[]; days: string; json?: boolean }) => {
      const who: PeerIdentity[] = [
        ...localGridIdentities({ gridId: checkName('grid id', o.gridId), clusters: parseIntFlag('clusters', o.clusters, 0, 64), nodesPerCluster: parseIntFlag('nodes', o.nodes, 0, 256), nodeSuffix: '' }),
        ...o.cluster.map((id) => ({ role: 'cluster' as const, id: checkName('cluster id', id) })),
        ...o.agent.map((id) => ({ role: 'agent' as const, id: checkName('node id', id) })),
        ...(o.operator.length > 0 ? o.operator : ['admin']).map((id) => ({ role: 'operator' as const, id: checkName('operator id', id) })),
      ];
      const out = resolve(dir);
      // Loaded here: every other command, services included, would pay for the X.509 builder at start.
      const { issueCerts } = await import('../common/cert-authority.js');
      const issued = await issueCerts(out, who, { hosts: o.host.map(checkHost), days: parseIntFlag('days', o.days, 1, 3650), nowMs: Date.now() });
      if (o.json) return printJson({ dir: out, issued: issued.map((w) => ({ ...w, ...certPaths(out, w) })) });
      line(`CA ${certPaths(out, who[0]!).ca}; ${issued.length} certificates issued, ${who.length - issued.length} already there`);
      for (const w of issued) line(`  ${w.role} ${w.id}: ${certPaths(out, w).cert}`);
    });
}

function checkHost(h: string): string {
  if (!/^[A-Za-z0-9.:-]{1,253}$/.test(h)) throw new UsageError(`bad --host ${JSON.stringify(h)}: expected a DNS name or an IP address`);
  return h;
}
