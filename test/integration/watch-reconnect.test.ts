import { describe, expect, it, onTestFinished } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { CLI_SCRIPT } from '../../src/node/agent-process.js';
import { bankJobSpec } from '../../src/bank/job.js';
import { startAgent, uniqueNodeId, type TestAgent } from '../helpers/agent.js';
import { withTmp } from '../helpers/tmp.js';

// `gridckpt watch --agent ADDR --json` across restarts of a real agent on
// the same address and data directory: kill -9 (the connection drops), then
// SIGTERM (the agent ends the stream). The watcher keeps running, says on
// stderr when the stream is lost and when it is back, prints the events of
// each new incarnation (its own seq from 1) and no event twice; stdout holds
// events only. Ctrl-C ends it with 0, even between attempts. With --once it ends with the stream,
// as it did before reconnecting existed.

const params = { accounts: 256, units: 2, opsPerUnit: 300, seed: 5 };

interface Event { seq: string; incarnation: string; kind: string; jobId: string; to: string }

/** A CLI process whose stdout and stderr lines are kept, and waited on by what they say. */
class Cli {
  readonly child: ChildProcess;
  readonly out: string[] = [];
  readonly err: string[] = [];
  readonly exited: Promise<number | null>;
  private readonly waiters: (() => void)[] = [];

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [CLI_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (into: string[]) => (l: string) => {
      into.push(l);
      for (const w of this.waiters.splice(0)) w();
    };
    createInterface({ input: this.child.stdout! }).on('line', keep(this.out));
    const errClosed = new Promise<void>((r) => createInterface({ input: this.child.stderr! }).on('line', keep(this.err)).once('close', () => r()));
    const outClosed = new Promise<void>((r) => this.child.stdout!.once('close', () => r()));
    this.exited = new Promise<number | null>((r) => this.child.once('exit', (code) => r(code))).then(async (code) => {
      await Promise.all([outClosed, errClosed]);
      for (const w of this.waiters.splice(0)) w();
      return code;
    });
  }

  events(): Event[] {
    return this.out.map((l) => JSON.parse(l) as Event);
  }

  /** Resolves once check holds over the lines seen (looked at again at each new line); fails if the process exits first. */
  async until(check: () => boolean, what: string, deadlineMs = 60_000): Promise<void> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      if (check()) return;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`the watcher exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}; stderr: ${this.err.join(' | ')}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${deadlineMs} ms; stderr: ${this.err.join(' | ')}; last out: ${this.out.slice(-3).join(' | ')}`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  errLine(re: RegExp): boolean {
    return this.err.some((l) => re.test(l));
  }
}

const live = (c: Cli) => c.child.exitCode === null && c.child.signalCode === null;

/** The job's run on this agent, told on the stream: started, its memory, the end. */
async function runJob(agent: TestAgent, w: Cli, jobId: string, incarnation: string): Promise<void> {
  await agent.client.startJob({ job: bankJobSpec(jobId, params, 0) });
  const mine = (e: Event) => e.jobId === jobId && e.incarnation === incarnation;
  await w.until(() => w.events().some((e) => mine(e) && e.kind === 'container' && e.to === 'created'), `${jobId}'s container event`);
  expect((await agent.client.waitJob({ jobId, timeoutMs: 60_000 })).job!.state).toBe('completed');
  await w.until(() => w.events().some((e) => mine(e) && e.kind === 'job' && e.to === 'completed'), `${jobId}'s completion`);
}

describe('gridckpt watch across restarts of the service', () => {
  it('keeps watching through kill -9 and SIGTERM restarts of an agent: every incarnation\'s events once, each loss and return said on stderr', async () => {
    await withTmp('watch-reconnect', async (dir) => {
      const dataDir = join(dir, 'a');
      const nodeId = uniqueNodeId('wr');
      const args = ['--metrics-listen', 'none'];
      let agent = await startAgent(dataDir, { nodeId, args });
      const address = agent.proc.ready.grpc;
      const w = new Cli(['watch', '--agent', address, '--json', '--insecure']);
      const once = new Cli(['watch', '--agent', address, '--json', '--once', '--insecure']);
      onTestFinished(async () => {
        for (const c of [w, once]) if (live(c)) c.child.kill('SIGKILL');
        await Promise.all([w.exited, once.exited]);
        await agent.stop();
      });
      for (const c of [w, once]) await c.until(() => c.errLine(/^watching the node agent at /), 'the watcher subscribed');

      expect(agent.proc.ready.incarnation).toBe('1');
      await runJob(agent, w, 'j1', '1');

      // kill -9: the connection drops under the stream.
      await agent.kill9();
      await w.until(() => w.errLine(/^lost the stream from the node agent at .*; opening it again$/), 'the loss said');
      // --once ends with the stream, as watch did before it reconnected: a dropped connection is an error.
      expect(await once.exited).toBe(1);
      expect(once.err.join('\n')).toMatch(/UNAVAILABLE: cannot watch the node agent at/);
      agent = await startAgent(dataDir, { nodeId, args: [...args, '--listen', address] });
      expect(agent.proc.ready.incarnation).toBe('2');
      await w.until(() => w.errLine(/^watching the node agent at .* again$/), 'the return said');
      await runJob(agent, w, 'j2', '2');
      expect(live(w)).toBe(true);
      expect(w.errLine(/^the service restarted: incarnation 1 → 2$/)).toBe(true);

      // SIGTERM: the agent ends the stream itself; the watcher opens it again all the same. It is
      // held (SIGSTOP) while the next agent runs a whole job, so it can only learn of that job from
      // the events the agent kept: they are printed, once.
      const lostBefore = w.err.filter((l) => l.startsWith('lost the stream')).length;
      await agent.stop();
      await w.until(() => w.err.filter((l) => l.startsWith('lost the stream')).length > lostBefore, 'the second loss said');
      w.child.kill('SIGSTOP');
      expect(w.err.at(-1)).toMatch(/\(the service ended it\); opening it again$/);
      agent = await startAgent(dataDir, { nodeId, args: [...args, '--listen', address] });
      expect(agent.proc.ready.incarnation).toBe('3');
      await agent.client.startJob({ job: bankJobSpec('j3', params, 0) });
      expect((await agent.client.waitJob({ jobId: 'j3', timeoutMs: 60_000 })).job!.state).toBe('completed');
      w.child.kill('SIGCONT');
      const j3 = () => w.events().filter((e) => e.jobId === 'j3' && e.incarnation === '3').map((e) => `${e.kind}:${e.to}`);
      await w.until(() => j3().includes('job:completed'), 'j3\'s events, from the replay');
      // Both units open the one container; the first creates it.
      expect(j3()).toEqual(['job:running', 'container:created', 'job:completed']);
      expect(w.errLine(/^the service restarted: incarnation 2 → 3$/)).toBe(true);

      // Ctrl-C while the service is down and the watcher is between attempts: a clean end.
      await agent.stop();
      await w.until(() => w.err.filter((l) => l.startsWith('lost the stream')).length === 3, 'the third loss said');
      w.child.kill('SIGINT');
      expect(await w.exited).toBe(0);

      // stdout is events only; each incarnation's are numbered 1, 2, 3, … with none missing and none twice.
      const events = w.events();
      for (const inc of ['1', '2', '3']) {
        const seqs = events.filter((e) => e.incarnation === inc).map((e) => Number(e.seq));
        expect(seqs.length, `incarnation ${inc}`).toBeGreaterThan(0);
        expect(seqs, `incarnation ${inc}`).toEqual(seqs.map((_, i) => i + 1));
      }
      expect(events.map((e) => e.incarnation)).toEqual([...events.map((e) => e.incarnation)].sort());
      // Each loss and each return said once on stderr, never once per attempt.
      expect(w.err.filter((l) => l.startsWith('lost the stream'))).toHaveLength(3);
      expect(w.err.filter((l) => /^watching .* again$/.test(l))).toHaveLength(2);
    });
  }, 180_000);
});
