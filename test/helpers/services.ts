import { spawnService as spawnSecured, type AgentProcess } from '../../src/node/agent-process.js';

// Services for the tests that are not about security: plaintext on loopback
// (--insecure), so their clients need no certificate. The security tests
// (test/integration/tls*.test.ts) start theirs with certificates instead
// (tls-fixture.ts).

export { CLI_SCRIPT, type AgentProcess } from '../../src/node/agent-process.js';

export function spawnService(service: string, args: string[], env: NodeJS.ProcessEnv = process.env, stderrTo: 'inherit' | 'ignore' | 'pipe' = 'inherit'): Promise<AgentProcess> {
  return spawnSecured(service, ['--insecure', ...args], env, stderrTo);
}

export function spawnAgent(args: string[], env: NodeJS.ProcessEnv = process.env, stderrTo: 'inherit' | 'ignore' | 'pipe' = 'inherit'): Promise<AgentProcess> {
  return spawnService('agent', args, env, stderrTo);
}
