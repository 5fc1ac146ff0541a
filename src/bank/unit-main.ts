import { UnitClient, unitEnvFromProcess } from '../unit/client.js';
import { CONTAINER as DEFAULT_CONTAINER, counterSlot, accountSlot, pageCount, transfer, validateParams, type BankParams } from './model.js';

// A bank unit process. Parameters come from BANK_* variables; its index from
// BANK_UNIT_INDEX. It resumes from its op counter in the container, so a
// restart after a restore continues exactly where the restored epoch stands.

export function bankParamsFromEnv(env: NodeJS.ProcessEnv): BankParams {
  const num = (name: string): number => {
    const v = env[name];
    if (v === undefined || !/^\d+$/.test(v)) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
    return Number(v);
  };
  return validateParams({ accounts: num('BANK_ACCOUNTS'), units: num('BANK_UNITS'), opsPerUnit: num('BANK_OPS'), seed: num('BANK_SEED') });
}

async function main(): Promise<void> {
  const env = unitEnvFromProcess();
  const p = bankParamsFromEnv(process.env);
  const index = Number(process.env['BANK_UNIT_INDEX']);
  if (!Number.isInteger(index) || index < 0 || index >= p.units) throw new Error(`bad BANK_UNIT_INDEX ${process.env['BANK_UNIT_INDEX']}`);
  // Each sub-bank of a job spread over nodes has its own container.
  const CONTAINER = process.env['BANK_CONTAINER'] ?? DEFAULT_CONTAINER;
  const client = new UnitClient(env);
  await client.attach();
  await client.openContainer(CONTAINER, { pageCount: pageCount(p), create: true });
  const c = counterSlot(p, index);
  const counter = new DataView(new ArrayBuffer(8));
  let k = Number(await client.readI64(CONTAINER, c.page, c.offset));
  if (env.restoredEpoch !== null) process.stdout.write(`unit ${index} resumes at op ${k} from epoch ${env.restoredEpoch}\n`);
  for (; k < p.opsPerUnit; k++) {
    const t = transfer(p, index, k);
    const from = accountSlot(t.from);
    const to = accountSlot(t.to);
    counter.setBigUint64(0, BigInt(k + 1), true);
    await client.batch([
      { container: CONTAINER, page: from.page, offset: from.offset, addI64: -t.amount },
      { container: CONTAINER, page: to.page, offset: to.offset, addI64: t.amount },
      { container: CONTAINER, page: c.page, offset: c.offset, data: new Uint8Array(counter.buffer.slice(0)) },
    ]);
  }
  client.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`bank unit failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
