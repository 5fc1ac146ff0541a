import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnAgent, type AgentProcess } from './services.js';
import { AgentClient } from '../../src/wire/agent-client.js';
import type { UnitEnv } from '../../src/unit/client.js';
import type { StatusResponse } from '../../src/gen/gridckpt/v1/node_agent.js';
import { untilStatus } from '../../src/wire/watch-until.js';
import { realRuntime } from '../../src/wire/real-clients.js';

// Starts a real agent process for a test and stops it afterwards.

export interface TestAgent {
  proc: AgentProcess;
  client: AgentClient;
  dataDir: string;
  nodeId: string;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

let counter = 0;

export function uniqueNodeId(tag: string): string {
  counter += 1;
  return `t-${tag}-${process.pid}-${counter}-${Math.floor(Math.random() * 1e6)}`;
}

export async function startAgent(dataDir: string, opts: { nodeId: string; args?: string[]; env?: NodeJS.ProcessEnv }): Promise<TestAgent> {
  const proc = await spawnAgent(
    ['--data-dir', dataDir, '--node-id', opts.nodeId, ...(opts.args ?? [])],
    { ...process.env, ...opts.env },
    process.env['GRIDCKPT_TEST_LOGS'] ? 'inherit' : 'ignore',
  );
  const client = new AgentClient(proc.ready.grpc);
  return {
    proc,
    client,
    dataDir,
    nodeId: opts.nodeId,
    async stop() {
      client.close();
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
      await proc.exited;
    },
    async kill9() {
      client.close();
      proc.child.kill('SIGKILL');
      await proc.exited;
    },
  };
}

/**
 * Waits for the agent's status to satisfy ok: read once the agent has
 * subscribed us to its Watch stream, then again at each event it pushes (its
 * jobs' states, rounds, local checkpoints, restores and containers all change
 * with an event), never on a timer. ok may throw to end the wait at once.
 */
export function untilAgent(c: AgentClient, ok: (s: StatusResponse) => boolean | Promise<boolean>, what: string, deadlineMs = 120_000): Promise<StatusResponse> {
  return untilStatus(realRuntime(), c, ok, what, deadlineMs);
}

/** A unit's identity, read from its environment as root can (for API tests). */
/**
 * A unit that announces itself: it dumps its environment to `envFile` (via a
 * temp name and a rename, so the file appears whole) and then sleeps. A
 * spawned pid exists before its exec, so /proc/PID/environ may still hold the
 * parent's environment when StartJob returns; the announcement is the event.
 */
export function announcingUnit(unitId: string, envFile: string): { unitId: string; command: string; args: string[]; env: Record<string, string> } {
  return { unitId, command: '/bin/sh', args: ['-c', 'env -0 > "$0.tmp" && mv "$0.tmp" "$0" && exec sleep 600', envFile], env: {} };
}

/** The unit identity an `announcingUnit` dumped, once its file appears. */
export async function unitEnvOf(envFile: string): Promise<UnitEnv> {
  await untilFile(envFile);
  const raw = await readFile(envFile, 'utf8');
  const env = Object.fromEntries(raw.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  return {
    socket: env['GRIDCKPT_SOCKET']!,
    jobId: env['GRIDCKPT_JOB_ID']!,
    unitId: env['GRIDCKPT_UNIT_ID']!,
    token: env['GRIDCKPT_UNIT_TOKEN']!,
    nodeId: env['GRIDCKPT_NODE_ID'] ?? '',
    restoredEpoch: null,
  };
}

/** Kernel state letter of a process (R, S, T, Z, …), or null when gone. */
export async function procState(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

export function untilFile(path: string, deadlineMs = 30_000): Promise<void> {
  return untilPath(path, true, deadlineMs);
}

/** Until path is gone (removed by a service that tells no event of it): the directory above it is watched. */
export function untilGone(path: string, deadlineMs = 30_000): Promise<void> {
  return untilPath(path, false, deadlineMs);
}

/** Until path exists (or is gone): looked at again at each change the kernel reports in its directory, never on a timer. */
async function untilPath(path: string, present: boolean, deadlineMs: number): Promise<void> {
  const { watch, existsSync } = await import('node:fs');
  const { dirname } = await import('node:path');
  const done = () => existsSync(path) === present;
  if (done()) return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      watcher.close();
      reject(new Error(`${path} ${present ? 'did not appear' : 'was still there'} within ${deadlineMs} ms`));
    }, deadlineMs);
    const watcher = watch(dirname(path), () => {
      if (done()) {
        clearTimeout(timer);
        watcher.close();
        resolve();
      }
    });
    if (done()) {
      clearTimeout(timer);
      watcher.close();
      resolve();
    }
  });
}
