import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GridError, type GridErrorKind } from '../../../src/common/errors.js';
import {
  PAGE_BYTES, PageMemory, type PageMemoryConfig, type PageWriteOp, type SnapshotEntry,
} from '../../../src/node/memory/page-memory.js';
import { MemorySwap } from '../../../src/node/memory/swap-memory.js';

// PageMemory against a naive model: a Map of page contents, versions and
// changed flags, with no frames, no LRU and no swap. Random sequences of
// create / write / batch / read / readPages / snapshot / restoreChanged /
// loadPage / dropJob run under the minimum budget of 16 frames (the model can
// hold 2 jobs x 2 containers x 16 pages = 64 pages, so pages swap constantly),
// with swap faults injected now and then. After every step: checkInvariants()
// (invariants 1-4), every page's version / changed flag against the model,
// and one probed page's content (read through readPages, so the probe is
// itself part of the access pattern); every page's content at the end.
// Invariant 6: a step that throws leaves the model as it was, and PageMemory
// must then still agree with it. Invariant 7: every page's `where` and the
// swap counters are compared around each snapshot.

const CONFIG: PageMemoryConfig = {
  nodeId: 'n1',
  budgetBytes: 16 * PAGE_BYTES,
  maxContainersPerJob: 2,
  maxPagesPerContainer: 16,
  maxBatchWrites: 4,
  maxBatchBytes: 40,
};

interface ModelPage { data: Uint8Array; version: bigint; changed: boolean; materialized: boolean }
type Model = Map<string, Map<string, ModelPage[]>>; // job -> container -> pages

const JOBS = ['j1', 'j2'] as const;
const NAMES = ['a', 'b', 'c'] as const;

// Concrete commands, as PageMemory sees them.
type Op = { kind: 'data'; data: Uint8Array } | { kind: 'add-i64'; delta: bigint };
type Command =
  | { t: 'create'; job: string; name: string; pages: number }
  | { t: 'batch'; job: string; writes: { container: string; page: number; offset: number; op: Op }[] }
  | { t: 'read'; job: string; name: string; page: number; offset: number; length: number }
  | { t: 'readPages'; job: string; name: string; first: number; count: number }
  | { t: 'snapshot'; job: string; mode: 'changed' | 'full' }
  | { t: 'restoreChanged'; job: string; keep: number }
  | { t: 'loadPage'; job: string; name: string; page: number; seed: number; short: boolean }
  | { t: 'dropJob'; job: string }
  | { t: 'fault'; io: 'read' | 'write' };

// Generated commands name their container by `pick` (an index into the
// containers that exist when the command runs) so most of them hit a real
// container; `bogus` (1 in 16) names a missing one instead. Mostly valid
// input, with enough bad values to exercise every rejection.
// (fast-check biases small ranges towards their ends, so rare choices are drawn from a wide range.)
const bogusArb = fc.nat(15).map((n) => n === 7);
const pageArb = fc.nat(); // resolved against the container's size: 1 in 23 is one past the end
const offsetArb = fc.oneof({ weight: 6, arbitrary: fc.nat(4000) }, { weight: 1, arbitrary: fc.integer({ min: 4084, max: 4100 }) });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('data' as const), data: fc.uint8Array({ maxLength: 12 }) }),
  fc.record({ kind: fc.constant('add-i64' as const), delta: fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }) }),
);
const writeArb = fc.record({ pick: fc.nat(), bogus: bogusArb, page: pageArb, offset: offsetArb, op: opArb });
const target = { pick: fc.nat(), bogus: bogusArb };
const job = fc.constantFrom(...JOBS);
const genArb = fc.oneof(
  { weight: 3, arbitrary: fc.record({ t: fc.constant('create' as const), job, name: fc.constantFrom(...NAMES), pages: fc.nat(20).map((n) => (n <= 16 ? Math.max(8, n) : [0, 1, 17, 16][n - 17]!)) }) },
  { weight: 10, arbitrary: fc.record({ t: fc.constant('batch' as const), pick: fc.nat(), writes: fc.nat(20).chain((n) => fc.array(writeArb, { minLength: n === 20 ? 5 : 1 + (n % 4), maxLength: n === 20 ? 5 : 1 + (n % 4) })) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('read' as const), ...target, page: pageArb, offset: offsetArb, length: fc.nat(16) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('readPages' as const), ...target, first: pageArb, count: fc.nat(4) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('snapshot' as const), job, mode: fc.constantFrom('changed' as const, 'full' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('restoreChanged' as const), job, keep: fc.nat(3) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('loadPage' as const), ...target, page: pageArb, seed: fc.nat(255), short: fc.nat(7).map((n) => n === 3) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('dropJob' as const), job }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('fault' as const), io: fc.constantFrom('read' as const, 'write' as const) }) },
);
type Generated = typeof genArb extends fc.Arbitrary<infer C> ? C : never;
const stepArb = fc.record({ command: genArb, probe: fc.nat() });

/** What the model says a command should do: throw a GridError of a kind, or succeed. */
type Expectation = { error: GridErrorKind } | { error: null };
const ok: Expectation = { error: null };

/** Totals over every run, to show the property exercised what it claims to. */
const seen = { swapOuts: 0, swapIns: 0, pagesSwappedIn: 0, faultsFired: 0, rejected: 0, steps: 0 };

class Harness {
  readonly swap = new MemorySwap();
  readonly mem = new PageMemory(CONFIG, this.swap);
  readonly model: Model = new Map();
  /** The last snapshot's entries per job, for restoreChanged. */
  readonly lastEntries = new Map<string, SnapshotEntry[]>();

  pages(jobId: string, name: string): ModelPage[] | undefined {
    return this.model.get(jobId)?.get(name);
  }

  /** Turns a generated command into a concrete one against the containers that exist now. */
  resolve(g: Generated): Command {
    const existing = [...this.model].flatMap(([jobId, job]) => [...job.keys()].map((name) => ({ job: jobId, name })));
    const pickTarget = (pick: number, bogus: boolean): { job: string; name: string } => {
      const t = existing[pick % Math.max(1, existing.length)] ?? { job: JOBS[pick % JOBS.length]!, name: 'x' };
      return bogus ? { job: t.job, name: 'x' } : t;
    };
    switch (g.t) {
      case 'batch': {
        const { job: jobId } = pickTarget(g.pick, false);
        const names = [...(this.model.get(jobId)?.keys() ?? [])];
        const writes = g.writes.map((w) => {
          const container = w.bogus || names.length === 0 ? 'x' : names[w.pick % names.length]!;
          return { container, page: this.resolvePage(jobId, container, w.page), offset: w.offset, op: w.op };
        });
        return { t: 'batch', job: jobId, writes };
      }
      case 'read':
      case 'loadPage': {
        const { pick, bogus, ...rest } = g;
        const t = pickTarget(pick, bogus);
        return { ...rest, ...t, page: this.resolvePage(t.job, t.name, g.page) };
      }
      case 'readPages': {
        const { pick, bogus, ...rest } = g;
        const t = pickTarget(pick, bogus);
        return { ...rest, ...t, first: g.first % (this.pages(t.job, t.name)?.length ?? 8) };
      }
      default:
        return g;
    }
  }

  private resolvePage(jobId: string, name: string, seed: number): number {
    const count = this.pages(jobId, name)?.length ?? 8;
    return seed % 23 === 0 ? count : seed % count;
  }

  run(c: Command): void {
    const expected = this.expect(c);
    let threw: unknown = null;
    try {
      this.execute(c);
    } catch (e) {
      threw = e;
    }
    seen.steps += 1;
    if (threw instanceof GridError) seen.rejected += 1;
    if (threw instanceof Error && !(threw instanceof GridError)) seen.faultsFired += 1;
    if (threw instanceof GridError) {
      expect({ command: c.t, kind: threw.kind, message: threw.message }).toMatchObject({ command: c.t, kind: expected.error ?? 'none' });
    } else if (threw instanceof Error && /^injected swap/.test(threw.message)) {
      expect(expected.error).toBeNull(); // an injected fault only fires on a valid step
    } else if (threw !== null) {
      throw threw;
    } else {
      expect(expected.error).toBeNull();
    }
    // On any throw the model was left as it was (execute updates it only after
    // PageMemory returned); check() then verifies PageMemory did nothing either.
  }

  /** Predicts the outcome of a command from the model, mirroring PageMemory's check order. */
  private expect(c: Command): Expectation {
    switch (c.t) {
      case 'create': {
        if (c.pages < 1 || c.pages > CONFIG.maxPagesPerContainer) return { error: 'invalid-argument' };
        const job = this.model.get(c.job);
        if (job?.has(c.name)) return { error: 'already-exists' };
        if (job !== undefined && job.size >= CONFIG.maxContainersPerJob) return { error: 'resource-exhausted' };
        return ok;
      }
      case 'batch': {
        if (c.writes.length > CONFIG.maxBatchWrites) return { error: 'invalid-argument' };
        let bytes = 0;
        for (const w of c.writes) {
          const pages = this.pages(c.job, w.container);
          if (pages === undefined) return { error: 'not-found' };
          if (w.page >= pages.length) return { error: 'invalid-argument' };
          const need = w.op.kind === 'data' ? w.op.data.length : 8;
          if (w.offset + need > PAGE_BYTES) return { error: 'invalid-argument' };
          bytes += need;
        }
        return bytes > CONFIG.maxBatchBytes ? { error: 'invalid-argument' } : ok;
      }
      case 'read': {
        const pages = this.pages(c.job, c.name);
        if (pages === undefined) return { error: 'not-found' };
        if (c.page >= pages.length || c.offset + c.length > PAGE_BYTES) return { error: 'invalid-argument' };
        return ok;
      }
      case 'readPages': {
        const pages = this.pages(c.job, c.name);
        if (pages === undefined) return { error: 'not-found' };
        return c.first + c.count > pages.length ? { error: 'invalid-argument' } : ok;
      }
      case 'snapshot':
      case 'dropJob':
      case 'fault':
        return ok;
      case 'restoreChanged': {
        for (const e of this.restoreEntries(c.job, c.keep)) {
          const pages = this.pages(c.job, e.container);
          if (pages === undefined) return { error: 'not-found' };
          if (e.page >= pages.length) return { error: 'invalid-argument' };
        }
        return ok;
      }
      case 'loadPage': {
        const pages = this.pages(c.job, c.name);
        if (pages === undefined) return { error: 'not-found' };
        if (c.page >= pages.length || c.short) return { error: 'invalid-argument' };
        return ok;
      }
    }
  }

  private restoreEntries(jobId: string, keep: number): SnapshotEntry[] {
    const all = this.lastEntries.get(jobId) ?? [];
    return all.filter((_, i) => i % (keep + 1) === 0);
  }

  /** Runs the command on PageMemory; on success, applies it to the model and checks results. */
  private execute(c: Command): void {
    const { mem } = this;
    switch (c.t) {
      case 'create': {
        const info = mem.createContainer(c.job, c.name, c.pages);
        expect(info).toEqual({ jobId: c.job, name: c.name, pageCount: c.pages, pagesChanged: c.pages });
        const job = this.model.get(c.job) ?? new Map<string, ModelPage[]>();
        job.set(c.name, Array.from({ length: c.pages }, () => ({ data: new Uint8Array(PAGE_BYTES), version: 0n, changed: true, materialized: false })));
        this.model.set(c.job, job);
        return;
      }
      case 'batch': {
        mem.applyBatch(c.job, c.writes as PageWriteOp[]);
        for (const w of c.writes) {
          const page = this.pages(c.job, w.container)![w.page]!;
          if (w.op.kind === 'data') page.data.set(w.op.data, w.offset);
          else {
            const dv = new DataView(page.data.buffer);
            dv.setBigInt64(w.offset, BigInt.asIntN(64, dv.getBigInt64(w.offset, true) + w.op.delta), true);
          }
          page.version += 1n;
          page.changed = true;
          page.materialized = true;
        }
        return;
      }
      case 'read': {
        const got = mem.read(c.job, c.name, c.page, c.offset, c.length);
        const page = this.pages(c.job, c.name)![c.page]!;
        expect(got).toEqual({ data: page.data.slice(c.offset, c.offset + c.length), version: page.version });
        return;
      }
      case 'readPages': {
        const got = mem.readPages(c.job, c.name, c.first, c.count);
        const pages = this.pages(c.job, c.name)!;
        const want = new Uint8Array(c.count * PAGE_BYTES);
        for (let i = 0; i < c.count; i += 1) want.set(pages[c.first + i]!.data, i * PAGE_BYTES);
        expect(equalBytes(got, want)).toBe(true);
        return;
      }
      case 'snapshot':
        this.snapshot(c.job, c.mode);
        return;
      case 'restoreChanged': {
        const entries = this.restoreEntries(c.job, c.keep);
        mem.restoreChanged(c.job, entries);
        for (const e of entries) this.pages(c.job, e.container)![e.page]!.changed = true;
        return;
      }
      case 'loadPage': {
        const bytes = Uint8Array.from({ length: c.short ? PAGE_BYTES - 1 : PAGE_BYTES }, (_, i) => (c.seed + i * 7) & 255);
        mem.loadPage(c.job, c.name, c.page, bytes);
        const page = this.pages(c.job, c.name)![c.page]!;
        page.data = bytes.slice();
        page.version += 1n;
        page.changed = false;
        page.materialized = true;
        return;
      }
      case 'dropJob':
        mem.dropJob(c.job);
        this.model.delete(c.job);
        return;
      case 'fault':
        if (c.io === 'read') this.swap.failNextRead();
        else this.swap.failNextWrite();
        return;
    }
  }

  private snapshot(jobId: string, mode: 'changed' | 'full'): void {
    const containers = [...(this.model.get(jobId) ?? new Map<string, ModelPage[]>())];
    const whereBefore = this.wheres();
    const statsBefore = this.mem.stats();
    const swappedBefore = containers.flatMap(([name, pages]) =>
      pages.map((p, i) => (mode === 'full' || p.changed) && this.mem.pageInfo(jobId, name, i).where === 'swapped'),
    ).filter(Boolean).length;
    const snap = this.mem.snapshot(jobId, mode);
    const want: SnapshotEntry[] = [];
    for (const [name, pages] of containers) {
      pages.forEach((p, i) => {
        if (mode === 'full' || p.changed) want.push({ container: name, page: i, version: p.version, stagingOffset: want.length * PAGE_BYTES });
      });
    }
    expect(snap.entries).toEqual(want);
    expect(snap.staging.length).toBe(want.length * PAGE_BYTES);
    expect(snap.pagesSwappedIn).toBe(swappedBefore);
    for (const e of want) {
      const page = this.pages(jobId, e.container)![e.page]!;
      expect(equalBytes(snap.staging.subarray(e.stagingOffset, e.stagingOffset + PAGE_BYTES), page.data)).toBe(true);
    }
    // Invariant 7: nothing moved, nothing swapped in or out.
    expect(this.wheres()).toEqual(whereBefore);
    expect(this.mem.stats()).toEqual(statsBefore);
    for (const [, pages] of containers) for (const p of pages) p.changed = false;
    this.lastEntries.set(jobId, snap.entries);
    seen.pagesSwappedIn += snap.pagesSwappedIn;
  }

  private wheres(): string[] {
    const out: string[] = [];
    for (const [jobId, job] of this.model) {
      for (const [name, pages] of job) pages.forEach((_, i) => out.push(`${jobId}/${name}/${i}:${this.mem.pageInfo(jobId, name, i).where}`));
    }
    return out;
  }

  /** Checks everything that can be checked without I/O, plus one probed page's content. */
  check(probe: number): void {
    const { mem } = this;
    mem.checkInvariants();
    expect(mem.jobs().sort()).toEqual([...this.model.keys()].sort());
    let total = 0;
    const all: [string, string, number][] = [];
    for (const [jobId, job] of this.model) {
      expect(mem.containers(jobId)).toEqual([...job].map(([name, pages]) => ({
        jobId, name, pageCount: pages.length, pagesChanged: pages.filter((p) => p.changed).length,
      })));
      for (const [name, pages] of job) {
        total += pages.length;
        pages.forEach((p, i) => {
          // One string per page, compared with expect only on a mismatch (expect is slow).
          const info = mem.pageInfo(jobId, name, i);
          const got = `${jobId}/${name}/${i} v${info.version} changed=${info.changed} owner=${info.owner}`;
          const want = `${jobId}/${name}/${i} v${p.version} changed=${p.changed} owner=n1`;
          if (got !== want) expect(got).toBe(want);
          // A written or loaded page is never 'zero' again (the converse does not hold:
          // a batch that failed on swap I/O may have made a zero page resident unwritten).
          if (p.materialized && info.where === 'zero') expect(`${want} where=zero`).toBe(`${want} materialized`);
          all.push([jobId, name, i]);
        });
      }
    }
    const stats = mem.stats();
    expect(stats.pagesTotal).toBe(total);
    expect(stats.framesUsed).toBeLessThanOrEqual(16);
    if (all.length > 0 && this.swap.pendingFaults === 0) {
      const [jobId, name, i] = all[probe % all.length]!;
      const got = mem.readPages(jobId, name, i, 1);
      expect(equalBytes(got, this.pages(jobId, name)![i]!.data)).toBe(true);
      mem.checkInvariants();
    }
  }

  /** Compares every page's content at the end of a run (no faults pending). */
  checkAllContents(): void {
    this.swap.clearFaults();
    for (const [jobId, job] of this.model) {
      for (const [name, pages] of job) {
        const got = this.mem.readPages(jobId, name, 0, pages.length);
        pages.forEach((p, i) => {
          if (!equalBytes(got.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES), p.data)) expect(`${jobId}/${name}/${i}`).toBe('equal to the model');
        });
      }
    }
    this.mem.checkInvariants();
    seen.swapOuts += this.mem.stats().swapOuts;
    seen.swapIns += this.mem.stats().swapIns;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

describe('PageMemory against a naive model (property)', () => {
  it('agrees on contents, versions and changed flags, and keeps its invariants, under heavy swapping and swap faults', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 200, size: 'max' }), (steps) => {
        const h = new Harness();
        // 44 pages against 16 frames from the start, so pages swap constantly.
        h.run({ t: 'create', job: 'j1', name: 'a', pages: 16 });
        h.run({ t: 'create', job: 'j1', name: 'b', pages: 12 });
        h.run({ t: 'create', job: 'j2', name: 'a', pages: 16 });
        for (const { command, probe } of steps) {
          h.run(h.resolve(command));
          h.check(probe);
        }
        h.checkAllContents();
      }),
      { numRuns: 300 },
    );
    // Not vacuous: pages were swapped out, in and snapshotted from swap, faults fired, input was rejected.
    expect(seen.swapOuts).toBeGreaterThan(1000);
    expect(seen.swapIns).toBeGreaterThan(1000);
    expect(seen.pagesSwappedIn).toBeGreaterThan(100);
    expect(seen.faultsFired).toBeGreaterThan(20);
    expect(seen.rejected).toBeGreaterThan(seen.steps / 20);
    expect(seen.rejected).toBeLessThan(seen.steps / 2);
  });
});
