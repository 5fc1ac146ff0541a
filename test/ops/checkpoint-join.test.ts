import { describe, expect, it } from 'vitest';
import { bankJobSpec } from '../../src/bank/job.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { realRuntime } from '../../src/wire/real-clients.js';
import { startAgent, uniqueNodeId } from '../helpers/agent.js';
import { untilCommitted } from '../helpers/bank.js';
import { withTmp } from '../helpers/tmp.js';

// Issue 8: a manual checkpoint while periodic ones ran failed with "ABORTED:
// a checkpoint step … is already in progress". It now joins the checkpoint
// under way and is answered with that epoch's outcome.

describe('a manual checkpoint while others run', () => {
  it('joins the running one: every request is answered with a committed epoch', async () => {
    await withTmp('ops-join', async (dir) => {
      const nodeId = uniqueNodeId('join');
      const agent = await startAgent(dir, { nodeId, args: ['--metrics-listen', 'none'] });
      try {
        const p = { accounts: 4096, units: 2, opsPerUnit: 50_000_000, seed: 3 };
        await agent.client.startJob({ job: bankJobSpec('bank', p, 20) }); // periodic checkpoints every 20 ms
        await untilCommitted(agent.client, 'bank', 2);
        // Eight at once: at most one can start a checkpoint; the others come while it (or a periodic one) runs.
        const answers = await Promise.all(Array.from({ length: 8 }, () => agent.client.checkpoint({ jobId: 'bank', full: false })));
        const epochs = answers.map((a) => a.epoch!.epoch);
        expect(epochs.every((e) => e > 0n)).toBe(true);
        // Joined requests share an epoch: fewer epochs than requests.
        expect(new Set(epochs).size).toBeLessThan(epochs.length);
      } finally {
        await agent.stop();
        await (await detectFreezer('auto', { time: realRuntime(), scope: nodeId })).cleanupScope();
      }
    });
  }, 60_000);
});
