import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { readFile, stat, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { announcingUnit, startAgent, uniqueNodeId, unitEnvOf, untilAgent, untilFile, type TestAgent } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';
import { UnitClient, UnitApiError } from '../../src/unit/client.js';
import { spawnAgent } from '../helpers/services.js';
import type { StatusResponse } from '../../src/gen/gridckpt/v1/node_agent.js';

// What a second gRPC implementation sending hostile input found the agent
// doing (issue 8), each against a real agent process over loopback gRPC:
// refused with the right status before anything is touched, and nothing a
// caller sends can poison a job, fill the job table for good or reach an
// ended job's pages.

const sleeper = (unitId: string, env: Record<string, string> = {}) => ({ unitId, command: '/bin/sleep', args: ['600'], env });
const job = (jobId: string, units: ReturnType<typeof sleeper>[]) => ({ jobId, units, checkpointIntervalMs: 0, fullEvery: 0 });

async function refusal(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  const err = await p.then(() => null, (e: unknown) => e as { code: number; details: string });
  if (err === null) throw new Error('accepted');
  return { code: err.code, details: err.details };
}

const jobOf = (s: StatusResponse, jobId: string) => s.jobs.find((j) => j.jobId === jobId);

async function withAgent(tag: string, fn: (a: TestAgent, dir: string) => Promise<void>, env: NodeJS.ProcessEnv = {}): Promise<void> {
  await withTmp(tag, async (dir) => {
    const a = await startAgent(join(dir, 'agent'), { nodeId: uniqueNodeId(tag), env });
    try {
      await fn(a, dir);
    } finally {
      await a.stop();
    }
  });
}

describe('agent: hostile input is refused before anything is touched', () => {
  it('a restore of an epoch that is not there, or of another job id, leaves the running job alone', async () => {
    await withAgent('hostile-restore', async (a) => {
      await a.client.startJob({ job: job('j1', [sleeper('u1')]) });
      await a.client.checkpoint({ jobId: 'j1', full: true });
      const pid = jobOf(await a.client.status(), 'j1')!.units[0]!.pid;

      const missing = await refusal(a.client.restore({ jobId: 'j1', epoch: 999n }));
      expect(missing.code).toBe(status.NOT_FOUND);
      expect(missing.details).toMatch(/no committed epoch 999 .*\(newest is 1\)/);
      const other = await refusal(a.client.restore({ jobId: 'j1', job: job('other', [sleeper('u1')]) }));
      expect(other.code).toBe(status.INVALID_ARGUMENT);
      expect(other.details).toContain('job.job_id "other" is not job_id "j1"');
      const huge = await refusal(a.client.restore({ jobId: 'j1', epoch: 2n ** 64n - 1n }));
      expect(huge.code).toBe(status.INVALID_ARGUMENT);

      // Still running, the same process, and no job "other" appeared.
      const s = await a.client.status();
      expect(jobOf(s, 'j1')).toMatchObject({ state: 'running', units: [expect.objectContaining({ pid, state: 'running', starts: 1 })] });
      expect(s.jobs.map((j) => j.jobId)).toEqual(['j1']);
    });
  });

  it('a start with a NUL or 3 MB in its second unit\'s env, or a missing command, is INVALID_ARGUMENT and starts nothing', async () => {
    await withAgent('hostile-start', async (a) => {
      const cases: Array<[ReturnType<typeof job>, RegExp]> = [
        [job('j2', [sleeper('u1'), sleeper('u2', { A: 'x\0y' })]), /^units\[1\]\.env\.A: contains a NUL byte/],
        [job('j2', [sleeper('u1'), sleeper('u2', { A: 'x'.repeat(3_000_000) })]), /^units\[1\]\.env: unit u2: environment of 3000003 bytes exceeds 65536/],
        [job('j2', [sleeper('u1'), { ...sleeper('u2'), command: '/no/such/binary' }]), /^units\[1\]\.command \(unit u2\): command "\/no\/such\/binary" does not exist/],
        [job('j2', [sleeper('u1'), { ...sleeper('u2'), command: 'no-such-binary-anywhere' }]), /is not found in the unit's PATH/],
      ];
      for (const [spec, why] of cases) {
        const r = await refusal(a.client.startJob({ job: spec }));
        expect([r.code, r.details]).toEqual([status.INVALID_ARGUMENT, expect.stringMatching(why)]);
        expect((await a.client.status()).jobs).toEqual([]);
      }
      // The same job id starts once the spec is right: nothing was left behind.
      const ok = await a.client.startJob({ job: job('j2', [sleeper('u1'), sleeper('u2')]) });
      expect(ok.job!.units.map((u) => u.state)).toEqual(['running', 'running']);
    });
  });

  it('epochs and incarnations at the end of their range are refused, and a job at the largest allowed epoch checkpoints on', async () => {
    await withAgent('hostile-epoch', async (a) => {
      await a.client.startJob({ job: job('j4', [sleeper('u1')]) });
      const fence = (epoch: bigint, incarnation = 1n) => ({ clusterId: 'c1', nodeId: 'coord', incarnation, epoch, leaderTerm: 0n });
      for (const [f, field] of [[fence(2n ** 64n - 1n), 'fence epoch'], [fence(2n ** 48n + 1n), 'fence epoch'], [fence(5n, 2n ** 64n - 1n), 'fence incarnation']] as const) {
        const r = await refusal(a.client.prepareCheckpoint({ fence: f, jobId: 'j4', parentEpoch: 0n, full: true }));
        expect([r.code, r.details]).toEqual([status.INVALID_ARGUMENT, expect.stringContaining(field)]);
        const c = await refusal(a.client.commitCheckpoint({ fence: f, jobId: 'j4' }));
        expect(c.code).toBe(status.INVALID_ARGUMENT);
      }
      // The largest epoch a peer may name leaves the job room to go on (2^64 - 2^48 epochs).
      await a.client.prepareCheckpoint({ fence: fence(2n ** 48n), jobId: 'j4', parentEpoch: 0n, full: true });
      await a.client.commitCheckpoint({ fence: fence(2n ** 48n), jobId: 'j4' });
      const next = await a.client.checkpoint({ jobId: 'j4', full: true });
      expect(next.epoch!.epoch).toBe(2n ** 48n + 1n);
      expect(jobOf(await a.client.status(), 'j4')!.state).toBe('running');
    });
  });

  it('ended jobs are forgotten past a bounded history and their pages freed: starts never run out', async () => {
    await withAgent('hostile-table', async (a, dir) => {
      // One job whose unit leaves 64 pages behind, then completes.
      const envFile = join(dir, 'pages.env');
      await a.client.startJob({ job: job('paged', [announcingUnit('p', envFile)]) });
      const u = new UnitClient(await unitEnvOf(envFile), 10_000);
      await u.openContainer('state', { pageCount: 64, create: true });
      await u.write('state', 3, 0, Buffer.from('kept until forgotten'));
      u.close();
      await a.client.stopJob({ jobId: 'paged' });
      expect((await a.client.status()).memory!.pagesTotal).toBe(64n);
      // Five running jobs, then more ended ones than the agent remembers (16): every start is taken.
      for (let i = 0; i < 5; i++) await a.client.startJob({ job: job(`run${i}`, [sleeper('u')]) });
      for (let i = 0; i < 20; i++) {
        await a.client.startJob({ job: { ...job(`done${i}`, []), units: [{ unitId: 'u', command: '/bin/true', args: [], env: {} }] } });
        await a.client.waitJob({ jobId: `done${i}`, timeoutMs: 30_000 });
      }
      const s = await untilAgent(a.client, (st) => jobOf(st, 'paged') === undefined, 'the oldest ended job forgotten');
      expect(s.memory!.pagesTotal).toBe(0n);
      expect(s.jobs.filter((j) => j.state === 'running').map((j) => j.jobId).sort()).toEqual(['run0', 'run1', 'run2', 'run3', 'run4']);
      expect(s.jobs.filter((j) => j.state !== 'running').length).toBeLessThanOrEqual(16);
      expect((await refusal(a.client.readContainer({ jobId: 'paged', container: 'state', firstPage: 0, pageCount: 1 }))).code).toBe(status.NOT_FOUND);
    });
  });
});

describe('agent: secrets, files and replies', () => {
  it('revokes an ended job\'s unit tokens, keeps files private, cuts echoed ids and reads at most what a client can receive', async () => {
    await withAgent('hostile-misc', async (a, dir) => {
      // A unit that announces its identity and exits: its job completes.
      const envFile = join(dir, 'done.env');
      const once = { unitId: 'u', command: '/bin/sh', args: ['-c', 'env -0 > "$0.tmp" && mv "$0.tmp" "$0"', envFile], env: {} };
      await a.client.startJob({ job: { ...job('ended', []), units: [once] } });
      await untilFile(envFile);
      expect((await a.client.waitJob({ jobId: 'ended', timeoutMs: 30_000 })).job!.state).toBe('completed');
      const stale = new UnitClient(await unitEnvOf(envFile), 10_000);
      const err = await stale.openContainer('x', { pageCount: 1, create: true }).then(() => null, (e: unknown) => e);
      stale.close();
      expect(err).toBeInstanceOf(UnitApiError);
      // The same answer as any token that is not a live unit's (unit isolation, docs/security.md).
      expect((err as UnitApiError).code).toBe(status.PERMISSION_DENIED);

      // A live unit: a container past 1,023 pages, read back in one call of a default client.
      const liveEnv = join(dir, 'live.env');
      await a.client.startJob({ job: job('live', [announcingUnit('u', liveEnv)]) });
      const u = new UnitClient(await unitEnvOf(liveEnv), 10_000);
      await u.openContainer('big', { pageCount: 1100, create: true });
      await u.write('big', 1022, 0, Buffer.from('last'));
      u.close();
      const read = await a.client.readContainer({ jobId: 'live', container: 'big', firstPage: 0, pageCount: 1023 });
      expect(read.data.length).toBe(1023 * 4096);
      expect(read.data.subarray(1022 * 4096, 1022 * 4096 + 4).toString()).toBe('last');
      const tooMany = await refusal(a.client.readContainer({ jobId: 'live', container: 'big', firstPage: 0, pageCount: 1024 }));
      expect([tooMany.code, tooMany.details]).toEqual([status.INVALID_ARGUMENT, expect.stringContaining('read 1 to 1023 pages')]);
      await a.client.checkpoint({ jobId: 'live', full: true });

      // Files: data dir, logs, swap and epoch files are the agent user's alone.
      const modeOf = async (p: string) => (await stat(p)).mode & 0o777;
      const data = a.dataDir;
      expect(await modeOf(data)).toBe(0o700);
      expect(await modeOf(join(data, 'logs'))).toBe(0o700);
      expect(await modeOf(join(data, 'logs', 'live+u.log'))).toBe(0o600);
      expect(await modeOf(join(data, 'swap'))).toBe(0o600);
      const epochDir = join(data, 'store', 'live', (await readdir(join(data, 'store', 'live'))).find((n) => n.startsWith('epoch-'))!);
      expect(await modeOf(epochDir)).toBe(0o700);
      for (const f of await readdir(epochDir)) expect([f, await modeOf(join(epochDir, f))]).toEqual([f, 0o600]);

      // A megabyte-long id is not echoed back whole.
      const long = await refusal(a.client.stopJob({ jobId: 'x'.repeat(1 << 20) }));
      expect(long.code).toBe(status.NOT_FOUND);
      expect(long.details.length).toBeLessThan(300);
      expect(long.details).toContain('(1048576 characters)');
      const longStart = await refusal(a.client.startJob({ job: job('y'.repeat(1 << 20), [sleeper('u')]) }));
      expect(longStart.code).toBe(status.INVALID_ARGUMENT);
      expect(longStart.details.length).toBeLessThan(300);
    });
  });

  it('units see a minimal environment, not the agent\'s (an agent started with GRIDCKPT_RESTORED_EPOCH=42 starts fresh units)', async () => {
    await withAgent('hostile-env', async (a, dir) => {
      const envFile = join(dir, 'unit.env');
      await a.client.startJob({ job: { ...job('fresh', []), units: [{ ...announcingUnit('u', envFile), env: { MINE: 'yes' } }] } });
      await untilFile(envFile);
      const raw = await readFile(envFile, 'utf8');
      const env = Object.fromEntries(raw.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
      expect(env['GRIDCKPT_RESTORED_EPOCH']).toBeUndefined();
      expect(env['AGENT_SECRET']).toBeUndefined();
      expect(env['MINE']).toBe('yes');
      expect(env['PATH']).toBe(process.env['PATH']);
      expect(Object.keys(env).filter((k) => k.startsWith('GRIDCKPT_')).sort()).toEqual([
        'GRIDCKPT_JOB_ID', 'GRIDCKPT_NODE_ID', 'GRIDCKPT_SOCKET', 'GRIDCKPT_UNIT_ID', 'GRIDCKPT_UNIT_TOKEN',
      ]);
    }, { GRIDCKPT_RESTORED_EPOCH: '42', AGENT_SECRET: 'not for units' });
  });

  it('--unit-socket never deletes a regular file at its path', async () => {
    await withTmp('hostile-socket', async (dir) => {
      const precious = join(dir, 'precious.txt');
      await writeFile(precious, 'do not delete');
      const r = await spawnAgent(['--data-dir', join(dir, 'agent'), '--node-id', uniqueNodeId('sock'), '--unit-socket', precious, '--metrics-listen', 'none'], process.env, 'ignore')
        .then((p) => { p.child.kill('SIGTERM'); return 'started'; }, (e: unknown) => String(e));
      expect(r).toMatch(/exited before it was ready/);
      expect(await readFile(precious, 'utf8')).toBe('do not delete');
    });
  });
});
