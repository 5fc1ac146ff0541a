// Byte-for-byte comparison of a restored image with the model's
// (toEqual on thousands of 4 KiB arrays is very slow). Kept out of helpers.ts,
// which the crash test's child process imports without vitest.

import { expect } from 'vitest';

export function expectSameImage(got: Map<string, Uint8Array>, expected: Map<string, Uint8Array>, what: string): void {
  const sortedKeys = (m: Map<string, Uint8Array>): string[] => [...m.keys()].sort();
  expect(sortedKeys(got), `${what}: pages delivered`).toEqual(sortedKeys(expected));
  for (const [key, bytes] of expected) {
    if (!Buffer.from(got.get(key)!).equals(bytes)) expect.fail(`${what}: ${key} has the wrong content`);
  }
}
