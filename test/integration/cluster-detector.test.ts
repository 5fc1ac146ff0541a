import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { spawnService, type AgentProcess } from '../helpers/services.js';
import { ClusterClient } from '../../src/wire/cluster-client.js';
import { uniqueNodeId } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';
import { untilCluster } from '../helpers/cluster.js';

// The detector against real stalls: SIGSTOP of an agent for less than the
// detector's window is no failure (no false positive); a longer one is.

const logs = process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore';

/** Stops a process for ms, then continues it: the stall is the test's input. */
async function stall(p: AgentProcess, ms: number): Promise<void> {
  p.child.kill('SIGSTOP');
  await new Promise((r) => setTimeout(r, ms));
  p.child.kill('SIGCONT');
}

describe('detector on real processes', () => {
  it('a 500 ms SIGSTOP is no failure; a 2.5 s one is', async () => {
    await withTmp('detector', async (dir) => {
      const cluster = await spawnService('cluster', [
        '--data-dir', join(dir, 'cluster'), '--store-dir', join(dir, 'store'), '--heartbeat-interval-ms', '100', '--metrics-listen', 'none',
      ], process.env, logs);
      const client = new ClusterClient(cluster.ready.grpc);
      const agent = await spawnService('agent', [
        '--data-dir', join(dir, 'n1'), '--node-id', uniqueNodeId('det'), '--cluster', cluster.ready.grpc, '--metrics-listen', 'none',
      ], process.env, logs);
      try {
        await untilCluster(client, (s) => s.nodes.length === 1 && s.nodes[0]!.verdict === 'alive', 'the node', 30_000);
        // Let the detector learn the heartbeat rhythm (2 s of beats).
        await new Promise((r) => setTimeout(r, 2_000));
        await stall(agent, 500);
        // Give the detector time to be wrong: several heartbeat periods after the stall.
        await new Promise((r) => setTimeout(r, 1_000));
        let s = await client.status();
        expect(s.nodes[0]!.verdict).toBe('alive');
        expect(s.failuresDetected).toBe(0n);

        const t0 = performance.now();
        const long = stall(agent, 2_500);
        s = await untilCluster(client, (x) => x.nodes[0]!.verdict === 'failed', 'the failure verdict', 5_000);
        const detectedMs = performance.now() - t0;
        await long;
        expect(s.failuresDetected).toBe(1n);
        expect(detectedMs).toBeLessThan(2_000);
      } finally {
        client.close();
        agent.child.kill('SIGCONT');
        agent.child.kill('SIGTERM');
        await agent.exited;
        cluster.child.kill('SIGTERM');
        await cluster.exited;
      }
    });
  });
});
