import { spawn } from 'node:child_process';
import { CLI_SCRIPT } from '../../src/node/agent-process.js';

// Runs `gridckpt ARGS` to its end without blocking the test's event loop (a
// spawnSync would stall the servers the test itself runs). These tests are not
// about security: plaintext on loopback (--insecure), as test/helpers/services.ts.

export function run(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_SCRIPT, '--insecure', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.once('exit', (code) => resolve({ code, out, err }));
  });
}
