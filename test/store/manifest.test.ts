// The manifest codec: exact round trip, and strict parsing — a manifest whose
// digest does not match, or that is not exactly what buildManifest writes, is
// invalid (ARCHITECTURE §3.3: only a valid manifest commits an epoch).

import { describe, expect, it } from 'vitest';
import { GridError } from '../../src/common/errors.js';
import { buildManifest, encodeManifest, parseManifest, type ManifestFields } from '../../src/store/manifest.js';

const fields: ManifestFields = {
  jobId: 'job-1', epoch: 12345678901234567890n, parentEpoch: 12345678901234567889n, full: false, createdUnixMs: 1_700_000_000_123,
  containers: [{ name: 'bank', pageCount: 8 }, { name: 'log', pageCount: 0 }],
  parts: [{ nodeId: 'n1', dataFile: 'n1.pages', tableFile: 'n1.table', dataBytes: 8192, tableBytes: 106, pageCount: 2, tableDigest: 'a'.repeat(64) }],
  layout: {
    spec: { jobId: 'job-1', units: [{ unitId: 'u1', command: 'node', args: ['x.js'], env: { Z: '1', A: '2' } }], checkpointIntervalMs: 100, fullEvery: 8 },
    placement: { u1: 'n1' },
    partOwners: { n1: 'n1' },
  },
};

function text(): string {
  return new TextDecoder().decode(encodeManifest(buildManifest(fields)));
}

function parseError(source: string): string {
  try {
    parseManifest(source, '/s/MANIFEST.json');
  } catch (err) {
    expect(err).toBeInstanceOf(GridError);
    expect((err as GridError).kind).toBe('data-loss');
    return (err as GridError).message;
  }
  throw new Error('parsed');
}

describe('manifest', () => {
  it('round trips, bigints as decimal strings', () => {
    const m = buildManifest(fields);
    expect(m.digest).toMatch(/^[0-9a-f]{64}$/);
    const json = JSON.parse(text());
    expect(json.epoch).toBe('12345678901234567890');
    expect(json.parentEpoch).toBe('12345678901234567889');
    expect(json.format).toBe('gridckpt-epoch/2');
    expect(parseManifest(text(), 'x')).toEqual(m);
  });

  it('rejects a tampered field by its digest', () => {
    const tampered = text().replace('"dataBytes": 8192', '"dataBytes": 4096').replace('"pageCount": 2', '"pageCount": 1');
    expect(parseError(tampered)).toMatch(/^\/s\/MANIFEST\.json: invalid manifest: digest mismatch/);
    expect(parseError(text().replace('"u1": "n1"', '"u1": "n2"'))).toMatch(/digest mismatch/);
  });

  it('rejects what buildManifest never writes', () => {
    const obj = () => JSON.parse(text());
    const cases: Array<[string, (o: any) => void, RegExp]> = [
      ['extra key', (o) => (o.extra = 1), /keys/],
      ['missing digest', (o) => delete o.digest, /keys/],
      ['number epoch', (o) => (o.epoch = 5), /epoch must be a decimal string/],
      ['leading zero', (o) => (o.epoch = '05'), /epoch must be a decimal string/],
      ['older format (an opaque job value)', (o) => (o.format = 'gridckpt-epoch/1'), /format "gridckpt-epoch\/1", expected gridckpt-epoch\/2/],
      ['layout placement not a string', (o) => (o.layout.placement.u1 = 7), /layout\.placement\.u1 must be a string/],
      ['layout unit with an extra key', (o) => (o.layout.spec.units[0].argv = []), /layout\.spec\.units\[0\] has keys/],
      ['parent not below', (o) => (o.parentEpoch = o.epoch), /must be below epoch/],
      ['path in part', (o) => (o.parts[0].dataFile = '../n1.pages'), /files must be n1\.pages and n1\.table/],
      ['fraction', (o) => (o.createdUnixMs = 1.5), /createdUnixMs/],
      ['bad container name', (o) => (o.containers[0].name = 'a/b'), /bad container/],
    ];
    for (const [what, change, pattern] of cases) {
      const o = obj();
      change(o);
      expect(parseError(JSON.stringify(o)), what).toMatch(pattern);
    }
    expect(parseError('{"format": ')).toMatch(/not JSON/);
    expect(parseError('[]')).toMatch(/manifest must be an object/);
  });

  it('refuses to build an inconsistent manifest (invalid-argument)', () => {
    expect(() => buildManifest({ ...fields, full: true })).toThrow(/a full epoch has no parent epoch/);
    expect(() => buildManifest({ ...fields, parts: [{ ...fields.parts[0]!, dataBytes: 100 }] })).toThrow(/dataBytes 100 is not a multiple of 4096 up to pageCount 2 x 4096/);
    expect(() => buildManifest({ ...fields, parts: [fields.parts[0]!, fields.parts[0]!] })).toThrow(/node n1 has two parts/);
    expect(() => buildManifest({ ...fields, layout: { ...fields.layout, placement: { u1: 1 as unknown as string } } })).toThrow(/layout\.placement\.u1 must be a string/);
    expect(() => buildManifest({ ...fields, layout: undefined as never })).toThrow(/layout must be an object/);
  });
});
