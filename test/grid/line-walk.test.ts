// A grid rollback passes a line over only for data loss, naming each cluster.

import { describe, expect, it } from 'vitest';
import { judgeLine } from '../../src/grid/core/line-walk.js';

describe('judgeLine', () => {
  it('restored when every cluster restored', () => {
    expect(judgeLine(3n, [{ clusterId: 'a', outcome: 'ok', message: '' }])).toEqual({ kind: 'restored' });
  });

  it('passes a line over for data loss, and fails for anything else or without a line', () => {
    const lost = { clusterId: 'b', outcome: 'data-loss' as const, message: 'epoch 3 does not restore: crc32c mismatch' };
    expect(judgeLine(3n, [{ clusterId: 'a', outcome: 'ok', message: '' }, lost]))
      .toEqual({ kind: 'pass-over', reason: 'line 3: cluster b: epoch 3 does not restore: crc32c mismatch' });
    expect(judgeLine(3n, [lost, { clusterId: 'c', outcome: 'error', message: 'UNAVAILABLE' }])).toEqual({ kind: 'fail', reason: 'cluster c: UNAVAILABLE' });
    expect(judgeLine(null, [lost])).toEqual({ kind: 'fail', reason: 'cluster b: epoch 3 does not restore: crc32c mismatch' });
  });
});
