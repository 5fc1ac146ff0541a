import type { Etcd3 } from 'etcd3';
import type { StoredJobSpec } from '../store/index.js';
import type { GridJobRow } from './core/supervisor-types.js';
import { catalogAfterSave, forgottenFromJson, rowFromJson, type CatalogExtras, type CatalogFile, type ClusterRecord, type GridCatalogStore } from './catalog.js';
import type { RestartPolicy } from '../protocol/job-spec.js';

// The grid catalog in etcd (docs/grid-ha.md), for grid coordinators that
// elect a leader there: what catalog.ts keeps in one file, one key per job
// and per cluster under the grid's prefix —
//   <prefix>/jobs/<job id>      {row, spec, lineTimes, restartPolicy?}: the core's row, the unit specs, when each
//                               line was written, the restart policy its submit named
//   <prefix>/clusters/<id>      {storeDir, agentLeaseMs}
//   <prefix>/forgotten          {job id: highest epoch}: deleted jobs (job control), so that an id reused numbers above
// Every write is one transaction guarded by the leader's election key: it
// applies only while that key still exists with the create revision the
// leader was elected with (its term). A deposed leader's write is refused,
// and the shell is told (onDeposed), so the catalog only ever holds what a
// leader wrote while it led. A save writes the jobs whose entry changed.

/** etcd's default --max-txn-ops is 128: a save of more changed jobs is several transactions, each guarded. */
const MAX_OPS_PER_TXN = 100;

interface JobEntry { row: GridJobRow; spec: StoredJobSpec; lineTimes: Record<string, number>; restartPolicy?: RestartPolicy }

function json(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
}

export class DeposedError extends Error {}

export class EtcdCatalog implements GridCatalogStore {
  private constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly guard: { key: string; term: bigint },
    private state: CatalogFile,
    private readonly onDeposed: (reason: string) => void,
  ) {}

  /** Reads the whole catalog (the leader does, once elected, before its core starts). */
  static async load(client: Etcd3, prefix: string, guard: { key: string; term: bigint }, onDeposed: (reason: string) => void): Promise<EtcdCatalog> {
    const state: CatalogFile = { format: 'gridckpt-catalog/3', jobs: {}, clusters: {}, lineTimes: {} };
    for (const [key, value] of Object.entries(await client.getAll().prefix(`${prefix}/jobs/`).strings())) {
      const id = key.slice(`${prefix}/jobs/`.length);
      const e = JSON.parse(value) as Partial<JobEntry>;
      state.jobs[id] = rowFromJson(id, e);
      for (const [epoch, at] of Object.entries(e.lineTimes ?? {})) state.lineTimes[`${id}@${epoch}`] = at;
    }
    for (const [key, value] of Object.entries(await client.getAll().prefix(`${prefix}/clusters/`).strings())) {
      state.clusters[key.slice(`${prefix}/clusters/`.length)] = JSON.parse(value) as ClusterRecord;
    }
    const forgotten = await client.get(`${prefix}/forgotten`).string();
    state.forgotten = forgottenFromJson(forgotten === null ? {} : JSON.parse(forgotten));
    return new EtcdCatalog(client, prefix, guard, state, onDeposed);
  }

  rows(): GridJobRow[] {
    return Object.values(this.state.jobs).map((e) => structuredClone(e.row));
  }

  specs(): Map<string, StoredJobSpec> {
    return new Map(Object.values(this.state.jobs).map((e) => [e.spec.jobId, e.spec]));
  }

  forgotten(): Map<string, bigint> {
    return new Map(Object.entries(this.state.forgotten ?? {}).map(([id, e]) => [id, BigInt(e)]));
  }

  policies(): Map<string, RestartPolicy> {
    return new Map(Object.values(this.state.jobs).flatMap((e) => (e.restartPolicy ? [[e.spec.jobId, { ...e.restartPolicy }] as const] : [])));
  }

  clusters(): Map<string, ClusterRecord> {
    return new Map(Object.entries(this.state.clusters));
  }

  lineTime(jobId: string, epoch: bigint): number {
    return this.state.lineTimes[`${jobId}@${epoch}`] ?? 0;
  }

  async save(rows: readonly GridJobRow[], specOf: (jobId: string) => StoredJobSpec | null, line?: { jobId: string; epoch: bigint; unixMs: number }, extra?: CatalogExtras): Promise<void> {
    const next = catalogAfterSave(this.state, rows, specOf, line, extra);
    const puts: Array<[string, string]> = [];
    const deletes: string[] = [];
    for (const [id, e] of Object.entries(next.jobs)) {
      const value = json(this.entryOf(next, id, e));
      const old = this.state.jobs[id];
      if (!old || json(this.entryOf(this.state, id, old)) !== value) puts.push([`${this.prefix}/jobs/${id}`, value]);
    }
    for (const id of Object.keys(this.state.jobs)) if (!next.jobs[id]) deletes.push(`${this.prefix}/jobs/${id}`);
    if (json(next.forgotten ?? {}) !== json(this.state.forgotten ?? {})) puts.push([`${this.prefix}/forgotten`, json(next.forgotten ?? {})]);
    await this.write(puts, deletes);
    this.state = next;
  }

  async saveCluster(clusterId: string, record: ClusterRecord): Promise<void> {
    const old = this.state.clusters[clusterId];
    if (old && old.storeDir === record.storeDir && old.agentLeaseMs === record.agentLeaseMs) return;
    await this.write([[`${this.prefix}/clusters/${clusterId}`, json(record)]], []);
    this.state = { ...this.state, clusters: { ...this.state.clusters, [clusterId]: record } };
  }

  private entryOf(s: CatalogFile, id: string, e: { row: GridJobRow; spec: StoredJobSpec; restartPolicy?: RestartPolicy }): JobEntry {
    const lineTimes: Record<string, number> = {};
    for (const l of e.row.lines) {
      const at = s.lineTimes[`${id}@${l.epoch}`];
      if (at !== undefined) lineTimes[String(l.epoch)] = at;
    }
    return { row: e.row, spec: e.spec, lineTimes, ...(e.restartPolicy ? { restartPolicy: e.restartPolicy } : {}) };
  }

  /** Puts and deletes, each transaction applied only while this leader's election key is the one it was elected with. */
  private async write(puts: Array<[string, string]>, deletes: string[]): Promise<void> {
    const ops = [...puts.map(([k, v]) => this.client.put(k).value(v)), ...deletes.map((k) => this.client.delete().key(k))];
    for (let i = 0; i < ops.length; i += MAX_OPS_PER_TXN) {
      const r = await this.client.if(this.guard.key, 'Create', '==', this.guard.term.toString()).then(...ops.slice(i, i + MAX_OPS_PER_TXN)).commit();
      if (!r.succeeded) {
        const reason = `the catalog write was refused: election key ${this.guard.key} of term ${this.guard.term} is gone (a newer leader may be elected)`;
        this.onDeposed(reason);
        throw new DeposedError(reason);
      }
    }
  }
}
