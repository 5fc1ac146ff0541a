import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { spawnService, type AgentProcess } from '../helpers/services.js';
import { backoffDelayMs, DEFAULT_BACKOFF } from '../../src/detector/backoff.js';
import { detectFreezer } from '../../src/node/units/freezer.js';
import { realRuntime } from '../../src/wire/real-clients.js';
import { uniqueNodeId } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';

// Issue 8: an agent whose cluster was unreachable logged a retry every
// 200 ms for ever; once registered, it said nothing when its cluster died.
// Registration is now retried with exponential backoff and jitter (told
// once, then at most every 30 s); a registered agent says when its cluster
// stops answering and when it is back.

interface LogLine { level: number; msg: string; [k: string]: unknown }

/** The JSON log lines of a process's stderr, awaited one condition at a time (each line is an event). */
class LogReader {
  readonly seen: LogLine[] = [];
  private waiters: Array<{ ok: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  constructor(p: AgentProcess) {
    createInterface({ input: p.child.stderr! }).on('line', (text) => {
      let l: LogLine;
      try {
        l = JSON.parse(text) as LogLine;
      } catch {
        return;
      }
      this.seen.push(l);
      this.waiters = this.waiters.filter((w) => (w.ok(l) ? (w.resolve(l), false) : true));
    });
  }

  /** The next line (from now on) for which ok holds. */
  next(ok: (l: LogLine) => boolean): Promise<LogLine> {
    return new Promise((resolve) => this.waiters.push({ ok, resolve }));
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const addr = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return typeof addr === 'object' && addr ? addr.port : 0;
}

describe('backoffDelayMs', () => {
  it('doubles from the base up to the cap; the jitter keeps at least half of each step', () => {
    const steps = [1, 2, 3, 4, 5, 6, 7, 8, 50].map((a) => backoffDelayMs(a, DEFAULT_BACKOFF, null));
    expect(steps).toEqual([200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
    expect(backoffDelayMs(3, DEFAULT_BACKOFF, { next: () => 0, int: () => 0 })).toBe(400);
    expect(backoffDelayMs(3, DEFAULT_BACKOFF, { next: () => 0.999, int: () => 0 })).toBeCloseTo(799.6, 1);
  });
});

describe('an agent and an unreachable cluster', () => {
  it('backs off with jitter while its cluster is away, and says when a registered cluster stops answering and is back', async () => {
    await withTmp('ops-backoff', async (dir) => {
      const port = await freePort();
      const at = `127.0.0.1:${port}`;
      const nodeId = uniqueNodeId('bo');
      const env = { ...process.env, GRIDCKPT_LOG_LEVEL: 'debug' };
      const procs: AgentProcess[] = [];
      const cluster = async () => {
        const c = await spawnService('cluster', ['--data-dir', join(dir, 'c'), '--store-dir', join(dir, 's'), '--listen', at, '--heartbeat-interval-ms', '100', '--metrics-listen', 'none'], process.env, 'ignore');
        procs.push(c);
        return c;
      };
      const agent = await spawnService('agent', ['--data-dir', join(dir, 'n1'), '--node-id', nodeId, '--store-dir', join(dir, 's'), '--cluster', at, '--metrics-listen', 'none'], env, 'pipe');
      procs.push(agent);
      const log = new LogReader(agent);
      try {
        // Five failed registrations: their delays grow as the backoff's steps, jittered within each.
        const retries: LogLine[] = [];
        for (let i = 0; i < 5; i++) retries.push(await log.next((l) => /coordinator (still )?not reachable/.test(l.msg)));
        retries.forEach((l, i) => {
          const step = backoffDelayMs(i + 1, DEFAULT_BACKOFF, null);
          expect(l['retryInMs']).toBeGreaterThanOrEqual(step / 2);
          expect(l['retryInMs']).toBeLessThanOrEqual(step);
        });
        // Told once at warn (40); the rest at debug (20): no line every 200 ms at the default level.
        expect(retries.map((l) => l.level)).toEqual([40, 20, 20, 20, 20]);

        let c = await cluster();
        const registered = await log.next((l) => l.msg === 'registered with the coordinator');
        expect(registered['failedAttempts']).toBeGreaterThanOrEqual(5);

        c.child.kill('SIGKILL');
        await c.exited;
        const lost = await log.next((l) => l.msg === 'coordinator stopped answering heartbeats');
        expect(lost.level).toBe(40);
        expect(lost['failedBeats']).toBe(3);

        c = await cluster();
        const back = await log.next((l) => l.msg === 'coordinator answers heartbeats again');
        expect(back['silentForMs']).toBeGreaterThan(0);
        await log.next((l) => l.msg === 'registered with the coordinator');
        // While it was away, the loss was told once (the reminder comes every 30 s).
        expect(log.seen.filter((l) => l.msg === 'coordinator stopped answering heartbeats')).toHaveLength(1);
      } finally {
        for (const p of procs.reverse()) {
          if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
          await p.exited;
        }
        await (await detectFreezer('auto', { time: realRuntime(), scope: nodeId })).cleanupScope();
      }
    });
  }, 120_000);
});
