import { loadEpoch } from '../store/index.js';
import { CONTAINER, decodeBank, pageCount, PAGE_BYTES, type BankParams } from '../bank/model.js';

// Reads the bank's balances straight out of a committed epoch's files.
export async function bankFromEpoch(storeDir: string, jobId: string, epoch: bigint, p: BankParams, name = CONTAINER) {
  const pages = new Map<number, Uint8Array>();
  await loadEpoch(storeDir, jobId, epoch, (container, page, data) => {
    if (container === name) pages.set(page, Uint8Array.from(data));
  });
  const zero = new Uint8Array(PAGE_BYTES);
  const count = pageCount(p);
  return decodeBank(p, (i) => (i < count ? (pages.get(i) ?? zero) : zero));
}
