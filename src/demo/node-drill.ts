import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { spawnAgent, type AgentProcess } from '../node/agent-process.js';
import { AgentClient } from '../wire/agent-client.js';
import { untilStatus } from '../wire/watch-until.js';
import { realRuntime } from '../wire/real-clients.js';
import { listCommitted } from '../store/index.js';
import { bankJobSpec, readBankFromAgent } from '../bank/job.js';
import { expectedTotal, referenceBalances, totalOf, type BankParams } from '../bank/model.js';
import { balancesDigest } from '../bank/digest.js';
import { bankFromEpoch } from './bank-image.js';
import { certPaths } from '../common/cert-paths.js';
import { loadTlsFiles } from '../common/transport-security.js';
import type { PeerIdentity } from '../common/tls-identity.js';

// The single-node failure drill: run the bank job with periodic checkpoints,
// kill -9 the agent and every unit at a chosen moment, start a new agent on
// the same data directory, restore the last committed epoch, finish the job
// and compare with the failure-free result. The agent serves mutual TLS,
// with certificates made in the work dir, and the drill calls it as an
// operator.

export interface NodeDrillOptions {
  workDir: string;
  params: BankParams;
  intervalMs: number;
  /** Extra delay after the first committed epoch before the kill. */
  killDelayMs: number;
  freezer?: string;
  memoryBudget?: string;
  agentStderr?: 'inherit' | 'ignore';
  onEvent?: (text: string) => void;
}

export interface EpochCheck {
  epoch: string;
  total: string;
  ok: boolean;
}

export interface NodeDrillReport {
  digest: string;
  expectedDigest: string;
  epochsCommitted: number;
  restoredEpoch: string;
  failuresInjected: number;
  recoveries: number;
  killAfterStartMs: number;
  recoveryMs: number;
  freezer: string;
  epochChecks: EpochCheck[];
  invariantHeld: boolean;
  ok: boolean;
}

const JOB = 'bank';

export async function runNodeDrill(o: NodeDrillOptions): Promise<NodeDrillReport> {
  const say = o.onEvent ?? (() => undefined);
  const dataDir = join(o.workDir, 'node-1');
  const agentId: PeerIdentity = { role: 'agent', id: `drill-${process.pid}` };
  const operatorId: PeerIdentity = { role: 'operator', id: 'drill' };
  const certs = join(o.workDir, 'certs');
  const { issueCerts } = await import('../common/cert-authority.js');
  await issueCerts(certs, [agentId, operatorId], { hosts: [], days: 1, nowMs: Date.now() });
  const tls = certPaths(certs, agentId);
  const operator = await loadTlsFiles(certPaths(certs, operatorId));
  const args = ['--tls-cert', tls.cert, '--tls-key', tls.key, '--tls-ca', tls.ca, '--data-dir', dataDir, '--node-id', agentId.id, '--metrics-listen', 'none'];
  if (o.freezer) args.push('--freezer', o.freezer);
  if (o.memoryBudget) args.push('--memory-budget', o.memoryBudget);

  const first = await spawnAgent(args, process.env, o.agentStderr ?? 'ignore');
  say(`agent up at ${first.ready.grpc} (freezer ${first.ready.freezer}, pid ${first.ready.pid})`);
  const c1 = new AgentClient(first.ready.grpc, undefined, {}, operator);
  const t0 = performance.now();
  await c1.startJob({ job: bankJobSpec(JOB, o.params, o.intervalMs), leaseBound: false, fresh: false });
  say(`bank job started: ${o.params.units} units × ${o.params.opsPerUnit} transfers, checkpoint every ${o.intervalMs} ms`);
  await untilCommitted(c1, 1);
  await new Promise((r) => setTimeout(r, o.killDelayMs)); // the failure's moment is the drill's input
  const killAfterStartMs = performance.now() - t0;
  await killAll(first, c1);
  say(`kill -9 of the agent and its units after ${killAfterStartMs.toFixed(0)} ms`);

  const t1 = performance.now();
  const second = await spawnAgent(args, process.env, o.agentStderr ?? 'ignore');
  const c2 = new AgentClient(second.ready.grpc, undefined, {}, operator);
  try {
    const restored = await c2.restore({ jobId: JOB, epoch: 0n });
    const recoveryMs = performance.now() - t1;
    say(`new agent (incarnation ${second.ready.incarnation}) restored epoch ${restored.epoch!.epoch} in ${recoveryMs.toFixed(0)} ms`);
    const waited = await c2.waitJob({ jobId: JOB, timeoutMs: 600_000 });
    if (!waited.done || waited.job!.state !== 'completed') {
      throw new Error(`job did not complete after restore: ${waited.job!.state} ${waited.job!.lastError}`);
    }
    const { balances } = await readBankFromAgent(c2, JOB, o.params);
    const digest = balancesDigest(balances);
    const expectedDigest = balancesDigest(referenceBalances(o.params));
    const storeDir = join(dataDir, 'store');
    const epochChecks: EpochCheck[] = [];
    for (const m of await listCommitted(storeDir, JOB)) {
      const image = await bankFromEpoch(storeDir, JOB, m.epoch, o.params);
      const total = totalOf(image.balances);
      epochChecks.push({ epoch: m.epoch.toString(), total: total.toString(), ok: total === expectedTotal(o.params) });
    }
    const invariantHeld = totalOf(balances) === expectedTotal(o.params) && epochChecks.every((e) => e.ok);
    const report: NodeDrillReport = {
      digest,
      expectedDigest,
      epochsCommitted: epochChecks.length,
      restoredEpoch: restored.epoch!.epoch.toString(),
      failuresInjected: 1,
      recoveries: 1,
      killAfterStartMs: Math.round(killAfterStartMs),
      recoveryMs: Math.round(recoveryMs),
      freezer: second.ready.freezer,
      epochChecks,
      invariantHeld,
      ok: invariantHeld && digest === expectedDigest,
    };
    return report;
  } finally {
    c2.close();
    second.child.kill('SIGTERM');
    await second.exited;
  }
}

/** Over the agent's Watch stream (a local checkpoint is an event): fails at once if the job ends first. */
async function untilCommitted(c: AgentClient, n: number): Promise<void> {
  await untilStatus(realRuntime(), c, (s) => {
    const job = s.jobs.find((j) => j.jobId === JOB);
    if (job && job.checkpointsCommitted >= BigInt(n)) return true;
    if (job && job.state !== 'running') throw new Error(`job ${job.state} before its first checkpoint: ${job.lastError}`);
    return false;
  }, `${n} committed checkpoints of job ${JOB}`, 120_000);
}

async function killAll(agent: AgentProcess, c: AgentClient): Promise<void> {
  const s = await c.status();
  c.close();
  const pids = s.jobs.flatMap((j) => j.units.filter((u) => u.state !== 'exited').map((u) => u.pid));
  agent.child.kill('SIGKILL');
  for (const pid of pids) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await agent.exited;
}
