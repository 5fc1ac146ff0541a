import { describe, expect, it } from 'vitest';
import { status as grpcStatus } from '@grpc/grpc-js';
import { AgentClient } from '../../src/wire/agent-client.js';
import { bankJobSpec } from '../../src/bank/job.js';
import { startAgent, uniqueNodeId } from '../helpers/agent.js';
import { EventLog } from '../helpers/watch.js';
import { withTmp } from '../helpers/tmp.js';

// grpc-js runs a handler even after the call's deadline has passed. A start
// that the agent took after its cluster gave up would bind a lease the
// cluster never counted, and the cluster could run the same units elsewhere
// meanwhile (found by the simulator, test/sim/core-defects D4). The agent's
// core refuses a call stepped after its deadline. Here the agent is stopped
// (SIGSTOP) while a lease-bound start with a 300 ms deadline is in flight.

const params = { accounts: 64, units: 1, opsPerUnit: 100_000, seed: 3 };

describe('a start that arrives after its deadline', () => {
  it('is refused, says so on Watch, and starts nothing', async () => {
    await withTmp('late-start', async (dir) => {
      const agent = await startAgent(dir, { nodeId: uniqueNodeId('late') });
      const events = new EventLog(agent.client.watch());
      try {
        // The stream is live once it carries the probe job's start.
        await agent.client.startJob({ job: bankJobSpec('probe', params, 0), leaseBound: false, fresh: true });
        await events.next((e) => e.jobId === 'probe' && e.kind === 'job', 'the probe job started');

        const pid = agent.proc.child.pid!;
        const late = new AgentClient(agent.proc.ready.grpc, 300);
        process.kill(pid, 'SIGSTOP');
        let code: number | undefined;
        try {
          await late.startJob({ job: bankJobSpec('late', params, 0), leaseBound: true, fresh: true });
        } catch (err) {
          code = (err as { code?: number }).code;
        } finally {
          process.kill(pid, 'SIGCONT');
          late.close();
        }
        expect(code).toBe(grpcStatus.DEADLINE_EXCEEDED);

        const refused = await events.next((e) => e.jobId === 'late', 'the late start to be refused');
        expect(refused.to).toBe('refused');
        expect(refused.detail).toMatch(/after its deadline/);
        const s = await agent.client.status();
        expect(s.jobs.map((j) => j.jobId)).not.toContain('late');
        expect(s.jobs.find((j) => j.jobId === 'probe')?.state).toBe('running');
      } finally {
        events.stream.cancel();
        await agent.stop();
      }
    });
  });
});
