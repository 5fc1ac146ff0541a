// CRC32C on a worker thread (crc-offload.ts): the same answer as here, for
// shared and unshared bytes, and none lost when the worker goes away.

import { crc32c } from '@node-rs/crc32';
import { afterEach, describe, expect, it } from 'vitest';
import { OFFLOAD_MIN_BYTES, canOffload, closeCrcOffload, crcElsewhere } from '../../src/store/crc-offload.js';

function filled(bytes: number, shared: boolean, seed: number): Uint8Array {
  const v = new Uint8Array(shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
  let x = seed;
  for (let i = 0; i < bytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    v[i] = x >>> 24;
  }
  return v;
}

afterEach(async () => closeCrcOffload());

describe('crc-offload', () => {
  it('answers crc32c of the bytes, on the worker for a large shared view, here otherwise', async () => {
    const shared = filled(3 * OFFLOAD_MIN_BYTES, true, 1);
    const view = shared.subarray(4096, 4096 + 2 * OFFLOAD_MIN_BYTES);
    expect(canOffload(view)).toBe(true);
    expect(canOffload(shared.subarray(0, OFFLOAD_MIN_BYTES - 1))).toBe(false);
    const plain = filled(2 * OFFLOAD_MIN_BYTES, false, 2);
    expect(canOffload(plain)).toBe(false);
    const answers = await Promise.all([crcElsewhere(view), crcElsewhere(shared), crcElsewhere(plain)]);
    expect(answers).toEqual([crc32c(view), crc32c(shared), crc32c(plain)]);
  });

  it('a worker stopped while it owes answers: they are computed here instead', async () => {
    const shared = filled(4 * OFFLOAD_MIN_BYTES, true, 3);
    const pending = [0, 1, 2, 3].map((k) => crcElsewhere(shared.subarray(k * OFFLOAD_MIN_BYTES, (k + 1) * OFFLOAD_MIN_BYTES)));
    await closeCrcOffload();
    const got = await Promise.all(pending);
    expect(got).toEqual([0, 1, 2, 3].map((k) => crc32c(shared.subarray(k * OFFLOAD_MIN_BYTES, (k + 1) * OFFLOAD_MIN_BYTES))));
  });
});
