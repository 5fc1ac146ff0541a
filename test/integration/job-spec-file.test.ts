import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI_SCRIPT } from '../../src/node/agent-process.js';
import { startAgent, uniqueNodeId } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';

// `gridckpt start --spec FILE` reads the file with the job spec's one schema
// (src/protocol/job-spec.ts): a spec that leaves out env starts; a typo'd
// field is refused naming it; a command that does not exist is refused
// before anything starts, with the reason on the operator's screen (not
// "started" and an exit code in a log file).

function cli(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_SCRIPT, '--insecure', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('close', (code) => resolve({ code, out, err }));
  });
}

describe('gridckpt start --spec', () => {
  it('starts a spec without env or args, and refuses a typo, a bad value or a missing binary naming the field', async () => {
    await withTmp('spec-file', async (dir) => {
      const agent = await startAgent(join(dir, 'agent'), { nodeId: uniqueNodeId('spec') });
      try {
        const at = ['--agent', agent.proc.ready.grpc];
        const file = async (name: string, spec: unknown) => {
          const path = join(dir, name);
          await writeFile(path, JSON.stringify(spec));
          return path;
        };
        const ok = await cli('start', ...at, '--json', '--spec', await file('ok.json', { jobId: 'noenv', units: [{ unitId: 'u', command: '/bin/sleep', args: ['600'] }] }));
        expect([ok.code, ok.err]).toEqual([0, '']);
        expect(JSON.parse(ok.out)).toMatchObject({ jobId: 'noenv', state: 'running' });

        const cases: Array<[string, unknown, RegExp]> = [
          ['typo.json', { jobId: 'j', units: [{ unitId: 'u', command: '/bin/true' }], checkpointInterval: 100 }, /checkpointInterval: unknown field \(did you mean checkpointIntervalMs\?\)/],
          ['unit-typo.json', { jobId: 'j', units: [{ unitId: 'u', cmd: '/bin/true' }] }, /units\[0\]\.cmd: unknown field/],
          ['type.json', { jobId: 'j', units: [{ unitId: 'u', command: '/bin/true', env: { N: 5 } }] }, /units\[0\]\.env\.N: expected a string, got number "5"/],
          ['policy.json', { jobId: 'j', units: [{ unitId: 'u', command: '/bin/true' }], restartPolicy: { onUnitFailure: 'retry' } }, /restartPolicy\.onUnitFailure: "retry" is neither "restore" nor "fail"/],
          ['nounits.json', { jobId: 'j' }, /units: expected an array of units, got nothing \(it is required\)/],
        ];
        for (const [name, spec, why] of cases) {
          const r = await cli('start', ...at, '--spec', await file(name, spec));
          expect(r.err, name).toMatch(why);
          expect(r.code, name).toBe(2);
        }
        const missing = await cli('start', ...at, '--spec', await file('missing.json', { jobId: 'gone', units: [{ unitId: 'u', command: '/opt/nothing/here' }] }));
        expect(missing.err).toMatch(/INVALID_ARGUMENT.*units\[0\]\.command \(unit u\): command "\/opt\/nothing\/here" does not exist/);
        expect(missing.code).not.toBe(0);
        const jobs = (await agent.client.status()).jobs.map((j) => j.jobId);
        expect(jobs).toEqual(['noenv']);
      } finally {
        await agent.stop();
      }
    });
  });
});
