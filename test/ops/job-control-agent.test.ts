import { describe, expect, it } from 'vitest';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { realRuntime } from '../../src/wire/real-clients.js';
import { startAgent, uniqueNodeId } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';
import { run } from './cli-run.js';
import { alive } from '../helpers/pid.js';

// Job control at the agent tier, through the CLI as an operator uses it:
// `gridckpt job cancel|delete|restore --agent ADDR JOB`.

const sleeper = { jobId: 'jc', checkpointIntervalMs: 0, fullEvery: 0, units: [{ unitId: 'u0', command: '/bin/sleep', args: ['600'], env: {} }] };

describe('gridckpt job … --agent', () => {
  it('cancel stops the units and keeps the job and its epochs; restore brings it back from the last (or a given) epoch; delete forgets it', async () => {
    await withTmp('ops-jobctl', async (dir) => {
      const nodeId = uniqueNodeId('jc');
      const agent = await startAgent(dir, { nodeId, args: ['--metrics-listen', 'none'] });
      const at = ['--agent', agent.proc.ready.grpc];
      try {
        await agent.client.startJob({ job: sleeper });
        await agent.client.checkpoint({ jobId: 'jc', full: false });
        await agent.client.checkpoint({ jobId: 'jc', full: false });
        const pid = (await agent.client.status()).jobs[0]!.units[0]!.pid;

        const cancel = await run(['job', 'cancel', 'jc', ...at, '--json']);
        expect(cancel.code, cancel.err).toBe(0);
        expect(JSON.parse(cancel.out).state).toBe('stopped');
        expect(alive(pid)).toBe(false);
        expect((await agent.client.listEpochs({ jobId: 'jc' })).epochs.map((e) => e.epoch)).toEqual([1n, 2n]);

        const restore = await run(['job', 'restore', 'jc', ...at, '--json']);
        expect(restore.code, restore.err).toBe(0);
        expect(JSON.parse(restore.out).epoch.epoch).toBe('2');
        expect((await agent.client.status()).jobs[0]!.state).toBe('running');
        const older = await run(['job', 'restore', 'jc', ...at, '--epoch', '1']);
        expect(older.code, older.err).toBe(0);
        expect(older.out).toMatch(/^job jc restored on .* from epoch 1 /);

        const restarted = (await agent.client.status()).jobs[0]!.units[0]!.pid;
        const del = await run(['job', 'delete', 'jc', ...at]);
        expect(del.code, del.err).toBe(0);
        expect(del.out).toMatch(/^job jc deleted on .* \(units stopped\)/);
        expect(alive(restarted)).toBe(false);
        expect((await agent.client.status()).jobs).toEqual([]);
        // Forgotten: a second delete names it unknown; its epochs stay in the store.
        const again = await run(['job', 'delete', 'jc', ...at]);
        expect(again.code).toBe(1);
        expect(again.err).toMatch(/NOT_FOUND.*unknown job "jc"/);
        expect((await agent.client.listEpochs({ jobId: 'jc' })).epochs.map((e) => e.epoch)).toEqual([1n, 2n]);
      } finally {
        await agent.stop();
        await (await detectFreezer('auto', { time: realRuntime(), scope: nodeId })).cleanupScope();
      }
    });
  }, 60_000);

  it('names what is wrong: no tier, two tiers, --epoch off restore, a bad epoch, a bad address', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['job', 'cancel', 'jc'], /name exactly one tier: --agent, --cluster or --grid ADDR \(got none\)/],
      [['job', 'cancel', 'jc', '--agent', '127.0.0.1:1', '--grid', '127.0.0.1:2'], /got --agent, --grid/],
      [['job', 'delete', 'jc', '--agent', '127.0.0.1:1', '--epoch', '3'], /unknown option '--epoch'/],
      [['job', 'restore', 'jc', '--grid', '127.0.0.1:1', '--epoch', '0'], /bad epoch "0": expected a positive integer or "latest"/],
      [['job', 'cancel', 'jc', '--cluster', 'nowhere'], /cluster address/],
    ];
    for (const [args, message] of cases) {
      const r = await run(args);
      expect(r.err, args.join(' ')).toMatch(message);
      expect(r.code, args.join(' ')).toBe(2);
    }
  }, 60_000);
});
