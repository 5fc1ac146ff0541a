import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { CLI_SCRIPT } from '../../src/node/agent-process.js';
import { startAgent, uniqueNodeId } from '../helpers/agent.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { realRuntime } from '../../src/wire/real-clients.js';
import { withTmp } from '../helpers/tmp.js';

// Issue 8: `gridckpt epochs … | head` died with an EPIPE stack once head
// had read its lines and closed the pipe. It now stops quietly, exit 0.

describe('a reader that closes the pipe early', () => {
  it('epochs | head: no stack, exit 0', async () => {
    await withTmp('ops-epipe', async (dir) => {
      const nodeId = uniqueNodeId('ep');
      const agent = await startAgent(dir, { nodeId, args: ['--metrics-listen', 'none'] });
      try {
        await agent.client.startJob({ job: { jobId: 'sl', units: [{ unitId: 'u0', command: '/bin/sleep', args: ['600'], env: {} }], checkpointIntervalMs: 0, fullEvery: 0 } });
        for (let i = 0; i < 3; i++) await agent.client.checkpoint({ jobId: 'sl', full: false });
        // The reader is gone before the first line is written (as after `| head -0`, or a head that read enough
        // while a long list is still printing): every write meets a closed pipe, deterministically.
        const child = spawn(process.execPath, [CLI_SCRIPT, '--insecure', 'epochs', '--agent', agent.proc.ready.grpc, '--job', 'sl'], { stdio: ['ignore', 'pipe', 'pipe'] });
        child.stdout.destroy();
        let err = '';
        child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
        const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
        expect(err).toBe('');
        expect(code).toBe(0);
      } finally {
        await agent.stop();
        await (await detectFreezer('auto', { time: realRuntime(), scope: nodeId })).cleanupScope();
      }
    });
  }, 60_000);
});
