// The pure decisions of a node recovery: what a failed restore means, and
// who loads whose parts when the job walks back to an older epoch.

import { describe, expect, it } from 'vitest';
import { afterRestoreFailure, holdersAtEpoch, MAX_RECOVERY_ATTEMPTS, type RestoreFailure } from '../../src/cluster/core/node-recovery.js';

const failure = (over: Partial<RestoreFailure>): RestoreFailure => ({ nodeId: 'n2', kind: 'other', verdict: 'alive', epoch: 5n, message: 'boom', ...over });

describe('afterRestoreFailure', () => {
  it('loses a target that is unreachable or no longer alive, and plans again', () => {
    expect(afterRestoreFailure(failure({ kind: 'unreachable', message: 'ECONNREFUSED' }), 1))
      .toEqual({ kind: 'lose-node', nodeId: 'n2', reason: 'restore target n2 is unreachable: ECONNREFUSED' });
    expect(afterRestoreFailure(failure({ verdict: 'suspected' }), 1)).toEqual({ kind: 'lose-node', nodeId: 'n2', reason: 'restore target n2 is suspected: boom' });
  });

  it('passes over an epoch a node could not load, and fails on anything else or after the last attempt', () => {
    expect(afterRestoreFailure(failure({ kind: 'data-loss', message: 'crc32c mismatch' }), 2))
      .toEqual({ kind: 'skip-epoch', epoch: 5n, reason: 'node n2 could not load it: crc32c mismatch' });
    expect(afterRestoreFailure(failure({}), 1)).toEqual({ kind: 'fail', reason: 'node n2: boom' });
    expect(afterRestoreFailure(failure({ kind: 'unreachable' }), MAX_RECOVERY_ATTEMPTS))
      .toEqual({ kind: 'fail', reason: `gave up after ${MAX_RECOVERY_ATTEMPTS} attempts; the last: node n2: boom` });
  });
});

describe('holdersAtEpoch', () => {
  // At the epoch: u0, u1 on a (which also held the parts of x, lost before); u2 on b.
  const layout = { placement: { u0: 'a', u1: 'a', u2: 'b' }, partOwners: { x: 'a', a: 'a', b: 'b' } };

  it('sends each writer\'s parts to the node that runs its holder\'s units now', () => {
    const now = new Map([['u0', 's'], ['u1', 's'], ['u2', 'b']]); // a failed since; its units run on s
    expect(holdersAtEpoch(layout, ['a', 'b', 'x'], now)).toEqual({ ok: true, holders: new Map([['a', 's'], ['b', 'b'], ['x', 's']]) });
  });

  it('refuses a layout that the nodes now cannot take whole', () => {
    expect(holdersAtEpoch(layout, ['a'], new Map([['u0', 's'], ['u1', 't'], ['u2', 'b']])))
      .toEqual({ ok: false, reason: 'the units of a in that epoch now run on s and t' });
    expect(holdersAtEpoch(layout, ['a'], new Map([['u0', 'a'], ['u1', 'a'], ['u2', 'b'], ['u3', 'b']])))
      .toEqual({ ok: false, reason: 'unit u3 is not in that epoch' });
    expect(holdersAtEpoch({ ...layout, partOwners: { y: 'z' } }, ['y'], new Map([['u0', 'a'], ['u1', 'a'], ['u2', 'b']])))
      .toEqual({ ok: false, reason: 'the parts of y belong to z, which ran no unit in that epoch' });
  });
});
