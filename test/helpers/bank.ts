import { expect } from 'vitest';
import type { AgentClient } from '../../src/wire/agent-client.js';
import type { JobStatus, StatusResponse } from '../../src/gen/gridckpt/v1/node_agent.js';
import { untilAgent } from './agent.js';
import { readBankFromAgent } from '../../src/bank/job.js';
import { balancesDigest } from '../../src/bank/digest.js';
import { bankFromEpoch } from '../../src/demo/bank-image.js';
import { expectedTotal, referenceBalances, totalOf, type BankParams } from '../../src/bank/model.js';

/** Waits for the bank job to finish and checks it against the reference. */
export async function expectBankFinishesRight(client: AgentClient, jobId: string, p: BankParams): Promise<void> {
  const waited = await client.waitJob({ jobId, timeoutMs: 120_000 });
  expect(waited.done).toBe(true);
  expect(waited.job!.state).toBe('completed');
  const { balances, counters } = await readBankFromAgent(client, jobId, p);
  expect(counters).toEqual(new Array(p.units).fill(p.opsPerUnit));
  expect(totalOf(balances)).toBe(expectedTotal(p));
  expect(balancesDigest(balances)).toBe(balancesDigest(referenceBalances(p)));
}

/** Unit pids of a job, for killing them with the agent. */
export async function unitPids(client: AgentClient, jobId: string): Promise<number[]> {
  const s = await client.status();
  return s.jobs.find((j) => j.jobId === jobId)?.units.filter((u) => u.state !== 'exited').map((u) => u.pid) ?? [];
}

export function killGroups(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/**
 * Waits for the job to satisfy ok, over the agent's Watch stream (see
 * untilAgent): a job the agent does not know yet is waited for; one that
 * leaves running before ok holds fails the wait at once, with its lastError.
 */
export async function untilJob(client: AgentClient, jobId: string, ok: (j: JobStatus) => boolean, deadlineMs = 120_000): Promise<JobStatus> {
  const find = (s: StatusResponse) => s.jobs.find((j) => j.jobId === jobId);
  const s = await untilAgent(client, (st) => {
    const job = find(st);
    if (job && ok(job)) return true;
    if (job && job.state !== 'running') throw new Error(`job ${job.state} while waiting: ${job.lastError}`);
    return false;
  }, `job ${jobId}`, deadlineMs);
  return find(s)!;
}

export async function untilCommitted(client: AgentClient, jobId: string, n: number): Promise<void> {
  await untilJob(client, jobId, (j) => j.checkpointsCommitted >= BigInt(n));
}

/** A cluster bank job (one sub-bank per unit) at this epoch of a store: each sub-bank's failure-free end state. */
export async function expectSubBanksFinished(storeDir: string, jobId: string, epoch: bigint, p: BankParams): Promise<void> {
  for (let i = 0; i < p.units; i++) {
    const one = { ...p, units: 1, seed: p.seed + i };
    const image = await bankFromEpoch(storeDir, jobId, epoch, one, `bank-u${i}`);
    expect(image.counters, `sub-bank ${i} at epoch ${epoch}`).toEqual([p.opsPerUnit]);
    expect(balancesDigest(image.balances), `sub-bank ${i} at epoch ${epoch}`).toBe(balancesDigest(referenceBalances(one)));
  }
}

/** A grid bank job at a recovery line: each unit's sub-bank, read from the store the line names for it, at its end state. */
export async function expectLineFinished(
  line: { clusterEpochs: Record<string, bigint>; unitClusters: Record<string, string> },
  stores: ReadonlyMap<string, string>,
  p: BankParams,
): Promise<void> {
  for (let i = 0; i < p.units; i++) {
    const c = line.unitClusters[`u${i}`]!;
    const one = { ...p, units: 1, seed: p.seed + i };
    const image = await bankFromEpoch(stores.get(c)!, 'bank', line.clusterEpochs[c]!, one, `bank-u${i}`);
    expect(image.counters, `u${i} in ${c}`).toEqual([p.opsPerUnit]);
    expect(balancesDigest(image.balances), `u${i} in ${c}`).toBe(balancesDigest(referenceBalances(one)));
  }
}
