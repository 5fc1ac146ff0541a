import { describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DurableJson } from '../../src/runtime/durable-json.js';
import { GridCatalog } from '../../src/grid/catalog.js';
import { JobTable } from '../../src/cluster/job-table.js';
import { withTmp } from '../helpers/tmp.js';

// The small files the coordinators keep (grid catalog, cluster job table):
// updates apply in call order on each other's result and survive a reopen;
// a file that is not what it should be is refused, naming it.

const parse = (v: unknown) => {
  if (!Array.isArray(v)) throw new Error('not a list');
  return v.map(String);
};

describe('DurableJson', () => {
  it('applies concurrent updates in call order, and reopens with what was written', async () => {
    await withTmp('djson', async (dir) => {
      const f = await DurableJson.open(dir, 'x.json', parse, () => [] as string[]);
      expect(f.current).toEqual([]);
      await Promise.all(['a', 'b', 'c'].map((x) => f.update((l) => [...l, x])));
      expect(f.current).toEqual(['a', 'b', 'c']);
      const again = await DurableJson.open(dir, 'x.json', parse, () => []);
      expect(again.current).toEqual(['a', 'b', 'c']);
      expect(JSON.parse(await readFile(join(dir, 'x.json'), 'utf8'))).toEqual(['a', 'b', 'c']);
    });
  });

  it('a failed update leaves the content as it was, and later updates still run', async () => {
    await withTmp('djson', async (dir) => {
      const f = await DurableJson.open(dir, 'x.json', parse, () => [] as string[]);
      await f.update(() => ['kept']);
      await expect(f.update(() => { throw new Error('bad change'); })).rejects.toThrow('bad change');
      expect(f.current).toEqual(['kept']);
      await f.update((l) => [...l, 'next']);
      expect((await DurableJson.open(dir, 'x.json', parse, () => [])).current).toEqual(['kept', 'next']);
    });
  });

  it('refuses an unreadable or foreign file with data-loss, naming it; the catalog and job table too', async () => {
    await withTmp('djson', async (dir) => {
      await writeFile(join(dir, 'x.json'), '{"torn');
      await expect(DurableJson.open(dir, 'x.json', parse, () => [])).rejects.toMatchObject({ kind: 'data-loss', message: expect.stringContaining(join(dir, 'x.json')) });
      await writeFile(join(dir, 'catalog.json'), '{"format":"something-else"}');
      await expect(GridCatalog.open(dir)).rejects.toMatchObject({ kind: 'data-loss', message: expect.stringMatching(/catalog\.json is unreadable: not a gridckpt-catalog\/3 file/) });
      await writeFile(join(dir, 'jobs.json'), '[]');
      await expect(JobTable.open(dir)).rejects.toMatchObject({ kind: 'data-loss' });
    });
  });

  it('the catalog keeps the core\'s rows with their specs and lines\' times, and cluster stores, across a reopen; bigints round-trip', async () => {
    await withTmp('djson', async (dir) => {
      const c = await GridCatalog.open(dir);
      const line = { epoch: 3n, clusterEpochs: { a: '3' }, unitClusters: { u0: 'a' } };
      const row = { jobId: 'j', units: ['u0'], state: 'running' as const, clusters: { u0: 'a' }, highestEpoch: '3', lines: [line], lost: [], lastError: '', recoveries: 0 };
      const spec = { jobId: 'j', units: [], checkpointIntervalMs: 0, fullEvery: 0 };
      await c.save([row], () => spec, { jobId: 'j', epoch: 3n, unixMs: 1 });
      await c.saveCluster('a', { storeDir: '/s/a', agentLeaseMs: 1000 });
      const r = await GridCatalog.open(dir);
      expect(r.rows()).toEqual([row]);
      expect(r.linesOf('j')).toEqual([{ jobId: 'j', gridEpoch: 3n, clusterEpochs: { a: 3n }, committedUnixMs: 1, unitClusters: { u0: 'a' } }]);
      expect(r.clusters().get('a')).toEqual({ storeDir: '/s/a', agentLeaseMs: 1000 });
      expect([...r.specs().keys()]).toEqual(['j']);
    });
  });
});
