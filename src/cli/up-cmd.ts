import type { Command } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalGrid, type LocalGrid } from '../demo/local-grid.js';
import { runGridDrill } from '../demo/grid-drill.js';
import { etcdHosts } from './grid-cmd.js';
import { GridClient } from '../wire/grid-client.js';
import { ClusterClient } from '../wire/cluster-client.js';
import { bankParams } from './bank-cmds.js';
import { line, parseIntFlag, printJson, UsageError } from './output.js';
import { insecureChosen } from './tls-flags.js';

// `gridckpt up`: a whole local grid on loopback as separate OS processes —
// by default 1 grid coordinator and 2 clusters × 3 node agents — with live
// status until Ctrl-C. `--demo` runs the failure drill and reports. Every
// link is mutual TLS, with certificates made in <work-dir>/certs, unless
// --insecure is given.

export function addUpCommand(program: Command): void {
  program
    .command('up')
    .description('start a whole local grid on loopback (grid, clusters, node agents) and show its status until Ctrl-C')
    .option('--clusters <n>', 'cluster coordinators', '2')
    .option('--nodes <n>', 'node agents per cluster', '3')
    .option('--capacity <units>', 'units per node', '4')
    .option('--heartbeat-interval-ms <ms>', 'heartbeat period at every tier', '100')
    .option('--checkpoint-interval-ms <ms>', 'grid round period', '500')
    .option('--freezer <kind>', 'auto, cgroup-v1, cgroup-v2 or signal')
    .option('--work-dir <dir>', 'where every service keeps its data (default: a new temp dir, removed at exit)')
    .option('--keep', 'keep the temp work dir at exit (a --work-dir given is always kept)')
    .option('--demo', 'run the bank job over both clusters, kill -9 a node agent mid-run, recover, and report')
    .option('--fail <what>', 'demo: what to kill -9 mid-run, node (an agent), cluster (a cluster coordinator) or grid (the leading grid coordinator: needs --etcd)', 'node')
    .option('--etcd <url,...>', 'run three grid coordinators electing a leader through this etcd (docs/grid-ha.md)')
    .option('--units <n>', 'demo: bank units', '4')
    .option('--ops <n>', 'demo: transfers per unit', '4000')
    .option('--accounts <n>', 'demo: accounts per unit', '1024')
    .option('--seed <n>', 'demo: seed', '1')
    .option('--logs', 'show every service\'s JSON log on stderr')
    .option('--json', 'demo: print the report as one JSON object')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const clusters = parseIntFlag('clusters', o['clusters'] as string, 1, 16);
      const nodes = parseIntFlag('nodes', o['nodes'] as string, 1, 64);
      const failure = o['fail'] as string;
      if (failure !== 'node' && failure !== 'cluster' && failure !== 'grid') throw new UsageError(`bad --fail ${JSON.stringify(failure)}: expected node, cluster or grid`);
      const etcd = o['etcd'] === undefined ? null : etcdHosts(o['etcd'] as string).join(',');
      if (failure === 'grid' && etcd === null) {
        throw new UsageError('--fail grid needs --etcd URL: a grid coordinator without etcd has no standby to take over (docs/grid-ha.md); start etcd and give its client URL');
      }
      if (failure === 'cluster' && clusters < 2) throw new UsageError(`--fail cluster needs at least 2 clusters (--clusters ${clusters})`);
      const json = o['json'] === true;
      const say = json ? () => undefined : line;
      const params = bankParams({ accounts: o['accounts'] as string, units: o['units'] as string, ops: o['ops'] as string, seed: o['seed'] as string });
      const ownDir = o['workDir'] === undefined;
      const workDir = ownDir ? await mkdtemp(join(tmpdir(), 'gridckpt-up-')) : (o['workDir'] as string);
      // From here on, every way out cleans up: the services (SIGTERM; units a killed agent left frozen in their
      // cgroups are removed) and the temp work dir. Ctrl-C used to kill this process at once, leaving both
      // behind (issue 8); a signal now runs the same cleanup and then exits 130 (SIGINT) or 143 (SIGTERM).
      let stopGrid: (() => Promise<void>) | null = null;
      let started = false;
      let cleaning: Promise<void> | null = null;
      const cleanup = () => (cleaning ??= (async () => {
        await stopGrid?.();
        if (!ownDir) return;
        if (o['keep']) say(`work directory kept: ${workDir}`);
        else await rm(workDir, { recursive: true, force: true });
      })());
      const live = o['demo'] !== true;
      const onSignal = (signal: NodeJS.Signals): void => {
        // The live status view ends on Ctrl-C by design (liveStatus); the demo and the start are interrupted.
        if (live && started) return;
        process.stderr.write(`gridckpt: ${signal}: stopping every service and cleaning up\n`);
        void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const g = await startLocalGrid({
        onStop: (stop) => {
          stopGrid = stop;
        },
        workDir, clusters, nodesPerCluster: nodes,
        capacityUnits: parseIntFlag('capacity', o['capacity'] as string, 1, 4096),
        heartbeatIntervalMs: parseIntFlag('heartbeat interval', o['heartbeatIntervalMs'] as string, 10, 60_000),
        checkpointIntervalMs: parseIntFlag('checkpoint interval', o['checkpointIntervalMs'] as string, 10, 86_400_000),
        freezer: o['freezer'] as string | undefined,
        logs: o['logs'] ? 'inherit' : 'ignore',
        certsDir: insecureChosen() ? null : join(workDir, 'certs'),
        nowMs: Date.now(),
        etcd,
      }).catch(async (err: unknown) => {
        await cleanup();
        throw err;
      });
      started = true;
      if (!json) printWhere(g, workDir);
      if (o['demo']) {
        try {
          const report = await runGridDrill(g, params, say, failure);
          if (json) printJson(report);
          else {
            line(`grid epochs committed ${report.epochsCommitted}, failures injected ${report.failuresInjected}, recoveries ${report.recoveries}`);
            line(report.failure === 'grid'
              ? `takeover ${report.detectionMs} ms after the kill (lease ${report.leaseMs} ms); every recovery line consistent: ${report.invariantHeld}`
              : `detection ${report.detectionMs} ms, recovery ${report.recoveryMs} ms; every recovery line consistent: ${report.invariantHeld}`);
            line(`digest   ${report.digest}`);
            line(`expected ${report.expectedDigest}`);
            line(report.ok ? 'OK: same result as a failure-free run' : 'FAILED: the result differs from a failure-free run');
          }
          process.exitCode = report.ok ? 0 : 1;
        } finally {
          await cleanup();
        }
        return;
      }
      await liveStatus(g, cleanup);
    });
}

function printWhere(g: LocalGrid, workDir: string): void {
  line(`grid coordinator  ${g.grid.ready.grpc}  metrics ${g.grid.ready.metrics}`);
  // With --etcd: the others campaign too (one leads; docs/grid-ha.md).
  for (const other of g.grids.slice(1)) line(`grid coordinator  ${other.ready.grpc}  metrics ${other.ready.metrics}  (elected through etcd with the first)`);
  for (const c of g.clusters) {
    line(`  ${c.clusterId}        ${c.proc.ready.grpc}  metrics ${c.proc.ready.metrics}  store ${c.storeDir}`);
    for (const a of c.agents) line(`    node ${a.ready.nodeId}  ${a.ready.grpc}  metrics ${a.ready.metrics}  freezer ${a.ready.freezer}`);
  }
  line(g.operator.kind === 'mtls' ? `mutual TLS on every link; operator certificate: --tls-cert ${join(workDir, 'certs', 'operator-admin.crt')} --tls-key ${join(workDir, 'certs', 'operator-admin.key')} --tls-ca ${join(workDir, 'certs', 'ca.crt')}` : 'no TLS (--insecure): plaintext on loopback, no authorization');
  line(`data under ${workDir}`);
}

async function liveStatus(g: LocalGrid, cleanup: () => Promise<void>): Promise<void> {
  const grid = new GridClient(g.grid.ready.grpc, 2_000, {}, g.operator);
  const clusters = g.clusters.map((c) => new ClusterClient(c.proc.ready.grpc, 2_000, {}, g.operator));
  line('submit work with: gridckpt grid-bank --grid ' + g.grids.map((x) => x.ready.grpc).join(',') + (g.operator.kind === 'mtls' ? ' and the operator certificate above' : ' --insecure') + '   (Ctrl-C stops everything)');
  const timer = setInterval(() => {
    void (async () => {
      const s = await grid.status().catch(() => null);
      const parts = [`[${new Date().toISOString().slice(11, 19)}]`];
      if (s) {
        parts.push(`clusters ${s.clusters.map((c) => `${c.clusterId}:${c.verdict}`).join(' ')}`);
        for (const j of s.jobs) parts.push(`job ${j.jobId} ${j.state} grid-epoch ${j.lastGridEpoch}`);
      }
      for (const c of clusters) {
        const cs = await c.status().catch(() => null);
        if (cs) parts.push(`${cs.clusterId} nodes ${cs.nodes.filter((n) => n.verdict === 'alive').length}/${cs.nodes.length} alive`);
      }
      line(parts.join(' | '));
    })();
  }, 1000);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  clearInterval(timer);
  grid.close();
  for (const c of clusters) c.close();
  line('stopping every service…');
  await cleanup();
  line('stopped');
}
