import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Metadata, credentials, status } from '@grpc/grpc-js';
import { CLI_SCRIPT, spawnService, type AgentProcess } from '../../src/node/agent-process.js';
import { GridClient } from '../../src/wire/grid-client.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { GrpcCallError } from '../../src/common/grpc-call.js';
import { INSECURE } from '../../src/common/transport-security.js';
import { GridServiceClient } from '../../src/gen/gridckpt/v1/grid.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { realRuntime } from '../../src/wire/real-clients.js';
import { untilStatus } from '../../src/wire/watch-until.js';
import { makeTestCa, type TestCa } from '../helpers/tls-fixture.js';
import { uniqueNodeId } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';

// Mutual TLS and authorization between the tiers (issue 8, point 1;
// docs/security.md): secure by default, --insecure only on loopback, and
// each service's access table applied to callers identified by their
// certificates — over real processes and real gRPC on loopback.

const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI_SCRIPT, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, err: r.stderr };
}

async function refusal(p: Promise<unknown>): Promise<GrpcCallError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(GrpcCallError);
  return err as GrpcCallError;
}

const operator = { role: 'operator', id: 'ops' } as const;

describe('secure by default', () => {
  it('an agent without TLS flags refuses to start and names --insecure; --insecure is refused off loopback', async () => {
    await withTmp('tls-flags', async (dir) => {
      const bare = cli('agent', '--data-dir', join(dir, 'a'), '--listen', '127.0.0.1:0', '--metrics-listen', 'none');
      expect(bare.code).toBe(2);
      expect(bare.err).toMatch(/refusing to serve 127\.0\.0\.1:0 without TLS: .*--insecure/);
      for (const listen of ['0.0.0.0:0', '[::]:0', '10.1.2.3:0']) {
        const open = cli('agent', '--insecure', '--data-dir', join(dir, 'a'), '--listen', listen, '--metrics-listen', 'none');
        expect(open.code, listen).toBe(2);
        expect(open.err, listen).toContain(`refusing --insecure on --listen ${listen}`);
      }
      for (const service of [['cluster', '--store-dir', join(dir, 's')], ['grid']]) {
        const r = cli(...service, '--data-dir', join(dir, service[0]!), '--metrics-listen', 'none');
        expect(r.code, service[0]).toBe(2);
        expect(r.err, service[0]).toMatch(/--insecure/);
      }
      // A client command too: no certificate, no call.
      const client = cli('status', '--agent', '127.0.0.1:1');
      expect(client.code).toBe(2);
      expect(client.err).toMatch(/no client certificate: .*--insecure/);
    });
  });
});

describe('mutual TLS between grid, cluster and agent', () => {
  let ca: TestCa;
  let dir: string;
  const procs: AgentProcess[] = [];
  let grid: AgentProcess;
  let cluster: AgentProcess;
  let agent: AgentProcess;
  const nodeId = uniqueNodeId('tls');

  beforeAll(async () => {
    ca = await makeTestCa('tls');
    dir = ca.root;
    const start = async (service: string, args: string[]) => {
      const p = await spawnService(service, args, process.env, logs);
      procs.push(p);
      return p;
    };
    grid = await start('grid', [...await ca.flags({ role: 'grid', id: 'g1' }), '--grid-id', 'g1', '--data-dir', join(dir, 'grid'), '--metrics-listen', 'none']);
    cluster = await start('cluster', [...await ca.flags({ role: 'cluster', id: 'c1' }), '--cluster-id', 'c1', '--data-dir', join(dir, 'c1'), '--store-dir', join(dir, 'store'),
      '--grid', grid.ready.grpc, '--metrics-listen', 'none']);
    agent = await start('agent', [...await ca.flags({ role: 'agent', id: nodeId }), '--node-id', nodeId, '--data-dir', join(dir, 'n1'), '--store-dir', join(dir, 'store'),
      '--cluster', cluster.ready.grpc, '--metrics-listen', 'none']);
  }, 120_000);

  afterAll(async () => {
    for (const p of [...procs].reverse()) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
      await p.exited;
    }
    await (await detectFreezer('auto', { time: realRuntime(), scope: nodeId })).cleanupScope();
    await ca.remove();
  });

  it('every link runs over mTLS: the cluster registers with the grid and the agent with the cluster', async () => {
    for (const p of [grid, cluster, agent]) expect(p.ready.tls).toBe(true);
    const rt = realRuntime(await ca.security(operator));
    const g = rt.clients.gridClient(grid.ready.grpc);
    const c = rt.clients.clusterClient(cluster.ready.grpc);
    try {
      await untilStatus(rt, g, (s) => s.clusters.some((x) => x.clusterId === 'c1' && x.verdict === 'alive'), 'c1 alive in the grid', 60_000);
      await untilStatus(rt, c, (s) => s.nodes.some((x) => x.nodeId === nodeId && x.verdict === 'alive'), 'the agent alive in c1', 60_000);
    } finally {
      g.close();
      c.close();
    }
  });

  it('a client without a certificate is refused in the TLS handshake: UNAVAILABLE, never reaching a handler', async () => {
    // grpc-js reports a handshake the server ends as a connection that could not be made.
    const plaintext = new GridClient(grid.ready.grpc, 10_000, {}, INSECURE);
    expect((await refusal(plaintext.status())).code).toBe(status.UNAVAILABLE);
    plaintext.close();
    const ca0 = await ca.security(operator);
    if (ca0.kind !== 'mtls') throw new Error('expected certificates');
    // TLS that trusts the CA but shows no certificate of its own.
    const anonymous = new GridServiceClient(grid.ready.grpc, credentials.createSsl(ca0.ca));
    const code = await new Promise<number>((resolve) => {
      anonymous.gridStatus({}, new Metadata(), { deadline: new Date(Date.now() + 10_000) }, (err) => resolve(err?.code ?? status.OK));
    });
    expect(code).toBe(status.UNAVAILABLE);
    anonymous.close();
    // A certificate from another CA is no better.
    const other = await makeTestCa('other');
    try {
      const stranger = new GridClient(grid.ready.grpc, 10_000, {}, await other.security(operator));
      expect((await refusal(stranger.status())).code).toBe(status.UNAVAILABLE);
      stranger.close();
    } finally {
      await other.remove();
    }
  });

  it("an agent's certificate calling a grid method is PERMISSION_DENIED", async () => {
    const asAgent = new GridClient(grid.ready.grpc, 10_000, {}, await ca.security({ role: 'agent', id: nodeId }));
    try {
      const e = await refusal(asAgent.status());
      expect(e.code).toBe(status.PERMISSION_DENIED);
      expect(e.details).toMatch(/GridService\.gridStatus: agent ".*" may not call it \(only operator\)/);
      expect((await refusal(asAgent.submitGridJob({ job: { jobId: 'x', units: [], checkpointIntervalMs: 0, fullEvery: 0 } }))).code).toBe(status.PERMISSION_DENIED);
    } finally {
      asAgent.close();
    }
  });

  it('a cluster heartbeating or registering as another cluster is PERMISSION_DENIED', async () => {
    const c2 = new GridClient(grid.ready.grpc, 10_000, {}, await ca.security({ role: 'cluster', id: 'c2' }));
    try {
      const beat = await refusal(c2.clusterHeartbeat({ clusterId: 'c1', incarnation: 99n, seq: 1n, jobs: [], freeUnits: 0 }));
      expect(beat.code).toBe(status.PERMISSION_DENIED);
      expect(beat.details).toMatch(/cluster id "c1" is not the caller's own \("c2"\)/);
      const reg = await refusal(c2.registerCluster({ clusterId: 'c1', incarnation: 99n, address: '127.0.0.1:1', storeDir: '/tmp', agentLeaseMs: 0 }));
      expect(reg.code).toBe(status.PERMISSION_DENIED);
    } finally {
      c2.close();
    }
    // The same rule one tier down: an agent registers only as itself.
    const other = new ClusterClient(cluster.ready.grpc, 10_000, {}, await ca.security({ role: 'agent', id: 'n-other' }));
    try {
      const e = await refusal(other.registerNode({ nodeId, incarnation: 2n ** 64n - 1n, address: '127.0.0.1:1', capacityUnits: 1, labels: {} }));
      expect(e.code).toBe(status.PERMISSION_DENIED);
      expect(e.details).toMatch(/node id ".*" is not the caller's own \("n-other"\)/);
    } finally {
      other.close();
    }
  });

  it('only the grid drives a cluster, only a cluster drives an agent', async () => {
    const ops = await ca.security(operator);
    const c = new ClusterClient(cluster.ready.grpc, 10_000, {}, ops);
    const a = new AgentClient(agent.ready.grpc, 10_000, {}, ops);
    try {
      const round = await refusal(c.abortRound({ fence: { clusterId: 'g1', nodeId: 'g1', incarnation: 1n, epoch: 1n, leaderTerm: 0n }, jobId: 'bank', reason: 'x' }));
      expect(round.code).toBe(status.PERMISSION_DENIED);
      expect(round.details).toMatch(/ClusterService\.abortRound: operator "ops" may not call it \(only grid\)/);
      // An agent under a cluster starts jobs for its coordinator alone.
      const start = await refusal(a.startJob({ job: { jobId: 'root', units: [{ unitId: 'u', command: '/usr/bin/id', args: [], env: {} }], checkpointIntervalMs: 0, fullEvery: 0 } }));
      expect(start.code).toBe(status.PERMISSION_DENIED);
      expect((await a.status()).nodeId).toBe(nodeId);
    } finally {
      c.close();
      a.close();
    }
  });

  it('a client checks the role (and, for an agent, the node id) of the server it dials', async () => {
    // A grid client pointed at the agent: the agent's certificate is not a grid's.
    const wrong = new GridClient(agent.ready.grpc, 10_000, {}, await ca.security(operator));
    const e = await refusal(wrong.status());
    expect(e.code).toBe(status.UNAVAILABLE);
    wrong.close();
    // The cluster dials a node's address expecting that node: an agent registered
    // (as itself) with another node's address gets nothing through.
    const ops = await ca.security(operator);
    const notThatNode = new AgentClient(agent.ready.grpc, 10_000, {}, ops, 'someone-else');
    expect((await refusal(notThatNode.status())).code).toBe(status.UNAVAILABLE);
    notThatNode.close();
    const thatNode = new AgentClient(agent.ready.grpc, 10_000, {}, ops, nodeId);
    expect((await thatNode.status()).nodeId).toBe(nodeId);
    thatNode.close();
  });
});
