import { scriptPath } from '../common/script-path.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import type { AgentClient } from '../wire/agent-client.js';
import { CONTAINER, decodeBank, pageCount, PAGE_BYTES, type BankParams } from './model.js';

// Builds the bank job's spec and reads its state back from an agent.

export const BANK_UNIT_SCRIPT = scriptPath(import.meta.url, './unit-main.js');

export function bankJobSpec(jobId: string, p: BankParams, checkpointIntervalMs: number, fullEvery = 0, container = CONTAINER): JobSpec {
  const units = Array.from({ length: p.units }, (_, i) => ({
    unitId: `u${i}`,
    command: process.execPath,
    args: [BANK_UNIT_SCRIPT],
    env: {
      BANK_ACCOUNTS: String(p.accounts),
      BANK_UNITS: String(p.units),
      BANK_OPS: String(p.opsPerUnit),
      BANK_SEED: String(p.seed),
      BANK_UNIT_INDEX: String(i),
      BANK_CONTAINER: container,
    },
  }));
  return { jobId, units, checkpointIntervalMs, fullEvery };
}

export async function readBankFromAgent(client: AgentClient, jobId: string, p: BankParams, container = CONTAINER) {
  const count = pageCount(p);
  const pages: Uint8Array[] = [];
  for (let first = 0; first < count; first += 256) {
    const n = Math.min(256, count - first);
    const { data } = await client.readContainer({ jobId, container, firstPage: first, pageCount: n });
    for (let i = 0; i < n; i++) pages.push(data.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES));
  }
  return decodeBank(p, (i) => pages[i]!);
}

/** Each unit runs its own sub-bank (its own container and seed), so units move between nodes whole. */
export function clusterBankSpec(jobId: string, p: { accounts: number; units: number; opsPerUnit: number; seed: number }, intervalMs: number) {
  const units = Array.from({ length: p.units }, (_, i) => {
    const one = bankJobSpec(jobId, { ...p, units: 1, seed: p.seed + i }, 0, 0, `bank-u${i}`).units[0]!;
    return { ...one, unitId: `u${i}` };
  });
  return { jobId, units, checkpointIntervalMs: intervalMs, fullEvery: 0 };
}
