import type { AgentProcess } from '../../src/node/agent-process.js';

/** SIGSTOPs a process for ms, then SIGCONTs it: the stall's length is the test's input, not a wait for an event. */
export async function stall(p: AgentProcess, ms: number): Promise<void> {
  p.child.kill('SIGSTOP');
  try {
    await new Promise((r) => setTimeout(r, ms));
  } finally {
    p.child.kill('SIGCONT');
  }
}
