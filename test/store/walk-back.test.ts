// The walk-back plan (ARCHITECTURE §3 invariant 6): named epochs newest
// first; a named epoch without a committed manifest is a skip that says why.

import { describe, expect, it } from 'vitest';
import { planWalkBack, type ManifestState } from '../../src/store/walk-back.js';

const committed = (parentEpoch: bigint | null): ManifestState => ({ kind: 'committed', parentEpoch });

describe('planWalkBack', () => {
  it('names a missing manifest the record knows of, and one a later manifest names as its parent', () => {
    const manifests = new Map<bigint, ManifestState>([
      [1n, committed(null)],
      [2n, { kind: 'missing', reason: '/s/epoch-2/MANIFEST.json does not exist' }],
      [3n, committed(2n)],
      [4n, { kind: 'invalid', reason: 'digest mismatch' }],
      [5n, { kind: 'missing', reason: '/s/epoch-5/MANIFEST.json does not exist' }],
    ]);
    expect(planWalkBack([5n, 3n, 1n, 4n], manifests)).toEqual([
      { kind: 'skip', skipped: { epoch: 5n, reason: 'manifest missing: /s/epoch-5/MANIFEST.json does not exist' } },
      { kind: 'skip', skipped: { epoch: 4n, reason: 'manifest invalid: digest mismatch' } },
      { kind: 'candidate', epoch: 3n },
      { kind: 'skip', skipped: { epoch: 2n, reason: 'manifest missing: /s/epoch-2/MANIFEST.json does not exist (epoch 3 names it as its parent)' } },
      { kind: 'candidate', epoch: 1n },
    ]);
  });

  it('does not mention a directory nothing names (an aborted round), and lists each epoch once', () => {
    const manifests = new Map<bigint, ManifestState>([
      [1n, committed(null)],
      [2n, committed(1n)],
      [3n, { kind: 'missing', reason: 'no manifest' }],
    ]);
    expect(planWalkBack([2n, 2n, 1n], manifests)).toEqual([{ kind: 'candidate', epoch: 2n }, { kind: 'candidate', epoch: 1n }]);
    expect(planWalkBack([7n], new Map())).toEqual([{ kind: 'skip', skipped: { epoch: 7n, reason: 'manifest missing: epoch 7 has no directory' } }]);
  });
});
