// What the grid does about its clusters' shares of a job.

import { describe, expect, it } from 'vitest';
import { judgeShares } from '../../src/grid/core/shares.js';

const share = (clusterId: string, state: string, lastError = '') => ({ clusterId, state, lastError });

describe('judgeShares', () => {
  it('loses a failed share (its units move), ahead of a fenced one', () => {
    expect(judgeShares([share('a', 'running'), share('b', 'failed', 'no alive node has room'), share('c', 'fenced')])).toEqual({
      kind: 'lose', clusters: ['b'], reason: 'cluster b has the job failed (no alive node has room)',
    });
  });

  it('rolls back in place for fenced or missing shares, completes when all completed, waits otherwise', () => {
    expect(judgeShares([share('a', 'fenced'), share('b', 'missing')])).toEqual({ kind: 'rollback', reason: 'cluster a has the job fenced; cluster b has the job missing' });
    expect(judgeShares([share('a', 'completed'), share('b', 'completed')])).toEqual({ kind: 'completed' });
    expect(judgeShares([share('a', 'completed'), share('b', 'recovering')])).toEqual({ kind: 'wait' });
    expect(judgeShares([])).toEqual({ kind: 'wait' });
  });
});
