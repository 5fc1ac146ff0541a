import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { spawnService } from '../helpers/services.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { realRuntime } from '../../src/wire/real-clients.js';
import { uniqueNodeId, untilFile } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';

// Issue 8: a unit that exited during a checkpoint made the checkpoint fail.
// A failpoint holds the freeze after it chose its targets; one unit exits
// normally (code 0) meanwhile; the checkpoint then commits.

describe('a unit that exits during a checkpoint', () => {
  it('is no checkpoint failure: the epoch commits', async () => {
    await withTmp('ops-exit', async (dir) => {
      const fp = join(dir, 'fp');
      await mkdir(fp);
      const go = join(dir, 'go');
      const nodeId = uniqueNodeId('ux');
      const env = { ...process.env, GRIDCKPT_FAILPOINTS: 'node.freeze-targets=wait', GRIDCKPT_FAILPOINT_DIR: fp };
      const agent = await spawnService('agent', ['--data-dir', join(dir, 'n1'), '--node-id', nodeId, '--metrics-listen', 'none'], env, 'pipe');
      // The agent's log says when it saw the unit exit: that is the event waited for.
      const exited = new Promise<void>((resolve) => {
        createInterface({ input: agent.child.stderr! }).on('line', (l) => {
          if (l.includes('"unit exited"') && l.includes('"unitId":"u1"')) resolve();
        });
      });
      const client = new AgentClient(agent.ready.grpc);
      try {
        await client.startJob({ job: { jobId: 'ex', checkpointIntervalMs: 0, fullEvery: 0, units: [
          { unitId: 'u0', command: '/bin/sleep', args: ['600'], env: {} },
          // Ends on its own, with code 0, once the test says so.
          { unitId: 'u1', command: '/bin/sh', args: ['-c', 'while [ ! -e "$0" ]; do sleep 0.02; done; exit 0', go], env: {} },
        ] } });
        const checkpoint = client.checkpoint({ jobId: 'ex', full: false });
        await untilFile(join(fp, 'node.freeze-targets.hit'));
        await writeFile(go, '');
        await exited;
        await writeFile(join(fp, 'node.freeze-targets.release'), '');
        const r = await checkpoint;
        expect(r.epoch!.epoch).toBe(1n);
        const job = (await client.status()).jobs.find((j) => j.jobId === 'ex')!;
        expect(job.checkpointsFailed).toBe(0n);
        expect(job.state).toBe('running');
      } finally {
        client.close();
        agent.child.kill('SIGTERM');
        await agent.exited;
        await (await detectFreezer('auto', { time: realRuntime(), scope: nodeId })).cleanupScope();
      }
    });
  }, 60_000);
});
