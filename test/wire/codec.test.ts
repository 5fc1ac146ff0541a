import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fenceFromPb, partInfoFromPb, partInfoToPb, required } from '../../src/wire/codec.js';
import { jobSpecFromPb, jobSpecToPb } from '../../src/node/codec.js';

// Domain in, wire out, and back (CONVENTIONS §8): a round trip changes
// nothing, and what protobuf cannot check (required messages, 64-bit ranges,
// names) is refused on decode with invalid-argument.

const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);

describe('wire codec round trips', () => {
  it('a part description survives domain -> wire -> domain', () => {
    fc.assert(fc.property(
      fc.record({
        nodeId: name, dataFile: name, tableFile: name,
        dataBytes: fc.nat(), tableBytes: fc.nat(), pageCount: fc.nat(), tableDigest: fc.stringMatching(/^[0-9a-f]{64}$/),
      }),
      (p) => { expect(partInfoFromPb(partInfoToPb(p))).toEqual(p); },
    ));
  });

  it('a part whose 64-bit sizes do not fit a safe integer is refused, naming the field', () => {
    const pb = partInfoToPb({ nodeId: 'n1', dataFile: 'd', tableFile: 't', dataBytes: 1, tableBytes: 1, pageCount: 1, tableDigest: '' });
    expect(() => partInfoFromPb({ ...pb, dataBytes: 2n ** 60n })).toThrow(/part data bytes 1152921504606846976 is out of range/);
  });

  it('a job spec survives domain -> wire -> domain', () => {
    fc.assert(fc.property(
      fc.record({
        jobId: name,
        units: fc.array(fc.record({ unitId: name, command: name, args: fc.array(fc.string(), { maxLength: 3 }), env: fc.dictionary(name, fc.string(), { maxKeys: 3 }) }), { maxLength: 4 }),
        checkpointIntervalMs: fc.nat(), fullEvery: fc.nat(),
      }),
      (s) => { expect(jobSpecFromPb(jobSpecToPb(s))).toEqual(s); },
    ));
  });

  it('a fence must be present, name its sender, and carry an epoch of at least 1', () => {
    expect(() => fenceFromPb(undefined)).toThrow(/missing fence/);
    expect(() => fenceFromPb({ clusterId: 'c1', nodeId: 'coordinator', incarnation: 1n, epoch: 0n, leaderTerm: 0n })).toThrow(/fence epoch must be at least 1/);
    expect(() => fenceFromPb({ clusterId: '', nodeId: 'coordinator', incarnation: 1n, epoch: 1n, leaderTerm: 0n })).toThrow(/cluster id/);
    expect(fenceFromPb({ clusterId: 'c1', nodeId: 'coordinator', incarnation: 7n, epoch: 3n, leaderTerm: 0n })).toEqual({ clusterId: 'c1', nodeId: 'coordinator', incarnation: 7n, epoch: 3n });
  });

  it('required names what is missing', () => {
    expect(() => required('job', undefined)).toThrow(/missing job/);
    expect(required('job', 0)).toBe(0);
  });
});
