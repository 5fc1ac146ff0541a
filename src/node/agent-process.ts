import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { scriptPath } from '../common/script-path.js';

// Starts a node agent as a separate OS process (`gridckpt agent`) and waits
// for the one JSON line it prints once it serves. Used by the demo and by
// the integration tests, which kill such processes for real.

export const CLI_SCRIPT = scriptPath(import.meta.url, '../cli/main.js');

export interface AgentReady {
  event: 'ready';
  nodeId: string;
  /** Set by `gridckpt cluster`. */
  clusterId?: string;
  grpc: string;
  metrics: string | null;
  unitSocket: string;
  freezer: string;
  incarnation: string;
  pid: number;
  /** The service serves mutual TLS (false: --insecure). */
  tls: boolean;
}

export interface AgentProcess {
  child: ChildProcess;
  ready: AgentReady;
  /** Resolves with the exit code or signal once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnAgent(args: string[], env: NodeJS.ProcessEnv = process.env, stderrTo: 'inherit' | 'ignore' | 'pipe' = 'inherit'): Promise<AgentProcess> {
  return spawnService('agent', args, env, stderrTo);
}

/** Any `gridckpt <service>` that prints a JSON ready line (agent, cluster, grid). */
export function spawnService(service: string, args: string[], env: NodeJS.ProcessEnv = process.env, stderrTo: 'inherit' | 'ignore' | 'pipe' = 'inherit'): Promise<AgentProcess> {
  const child = spawn(process.execPath, [CLI_SCRIPT, service, ...args], { env, stdio: ['ignore', 'pipe', stderrTo] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    let settled = false;
    lines.on('line', (line) => {
      if (settled) return;
      try {
        const msg = JSON.parse(line) as AgentReady;
        if (msg.event === 'ready') {
          settled = true;
          resolve({ child, ready: msg, exited });
        }
      } catch {
        // not the ready line
      }
    });
    void exited.then(({ code, signal }) => {
      if (!settled) {
        settled = true;
        reject(new Error(`agent exited before it was ready (code ${code}, signal ${signal})`));
      }
    });
  });
}
