import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { realpath } from 'node:fs/promises';
import { startAgent, uniqueNodeId, type TestAgent } from '../helpers/agent.js';
import { killGroups, unitPids } from '../helpers/bank.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { realRuntime } from '../../src/wire/real-clients.js';
import { withTmp } from '../helpers/tmp.js';
import { run } from './cli-run.js';
import { alive } from '../helpers/pid.js';

// Issue 8: a second agent on the same host with the same node id cleaned the
// node's cgroup scope at start — killing the first agent's units. An agent
// now holds its data dir and its node id for its lifetime; a second one is
// refused, naming the holder's pid, before it touches anything; the lock
// goes with its holder, even with kill -9, so no manual cleanup is needed.

const sleeper = (jobId: string) => ({ job: { jobId, units: [{ unitId: 'u0', command: '/bin/sleep', args: ['600'], env: {} }], checkpointIntervalMs: 0, fullEvery: 0 } });

describe('one agent per data dir and per node id on a host', () => {
  it('refuses a second agent naming the data dir or node id and the holder pid; the first one\'s units live on; kill -9 frees both', async () => {
    await withTmp('ops-lock', async (dir) => {
      const nodeId = uniqueNodeId('lock');
      const dataDir = join(dir, 'n1');
      let a: TestAgent | null = await startAgent(dataDir, { nodeId, args: ['--metrics-listen', 'none'] });
      let b: TestAgent | null = null;
      try {
        await a.client.startJob(sleeper('sl'));
        const [unit] = await unitPids(a.client, 'sl');
        expect(unit).toBeGreaterThan(0);
        const holder = a.proc.ready.pid;
        const real = await realpath(dataDir);

        const sameDir = await run(['agent', '--data-dir', dataDir, '--node-id', uniqueNodeId('lock2'), '--metrics-listen', 'none']);
        expect(sameDir.code).toBe(1);
        expect(sameDir.err).toContain(`gridckpt: data dir ${real} is in use by pid ${holder} (agent ${nodeId}, data dir ${real})`);
        const sameId = await run(['agent', '--data-dir', join(dir, 'n2'), '--node-id', nodeId, '--metrics-listen', 'none']);
        expect(sameId.code).toBe(1);
        expect(sameId.err).toContain(`gridckpt: node id ${nodeId} is in use on this host by pid ${holder}`);
        // Neither touched the first agent's units, nor its incarnation.
        expect(alive(unit!)).toBe(true);
        const s = await a.client.status();
        expect(s.incarnation).toBe(1n);
        expect(s.jobs[0]!.units[0]!.state).toBe('running');

        // kill -9 of the holder (and of its unit): the next agent on that data dir and node id starts, with no cleanup by hand.
        await a.kill9();
        killGroups([unit!]);
        a = null;
        b = await startAgent(dataDir, { nodeId, args: ['--metrics-listen', 'none'] });
        expect((await b.client.status()).incarnation).toBe(2n);
      } finally {
        await a?.stop();
        await b?.stop();
        await (await detectFreezer('auto', { time: realRuntime(), scope: nodeId })).cleanupScope();
      }
    });
  }, 120_000);
});
