// The epoch manifest: the one file whose presence commits an epoch. It names
// the parent, the containers, every node part with the exact sizes of its
// files and the sha256 of its page table, plus the agent's opaque job record,
// and ends with a sha256 digest over all of that.
// Invariants:
//   1. The digest is sha256 over the canonical JSON of every other field, in the
//      fixed key order of manifestBody; bigints are decimal strings.
//   2. parseManifest accepts only what buildManifest can produce: exact keys,
//      valid names and numbers, full <=> no parent, parent < epoch, part file
//      names derived from the node id (so a manifest never points outside its
//      epoch directory), and a matching digest. Anything else is data loss.
//   3. Part file names are stored relative to the epoch directory, so a store can
//      be moved or mounted elsewhere; readers resolve them to absolute paths.

import { createHash } from 'node:crypto';
import { GridError } from '../common/errors.js';
import { checkName } from '../common/names.js';
import { MAX_CONTAINERS, MAX_EPOCH, PAGE_BYTES, dataFileName, tableFileName } from './layout.js';

// 2: the typed layout record replaced the opaque `job` value of format 1.
export const MANIFEST_FORMAT = 'gridckpt-epoch/2';

export interface ContainerMeta { name: string; pageCount: number }

export interface PartInfo {
  nodeId: string;
  // A part of no pages has tableBytes 0 and neither file exists (epoch-writer.ts invariant 5).
  /** File name inside the epoch directory: `<nodeId>.pages`. */
  dataFile: string;
  /** File name inside the epoch directory: `<nodeId>.table`. */
  tableFile: string;
  dataBytes: number;
  tableBytes: number;
  pageCount: number;
  /** sha256 hex of the whole table file. */
  tableDigest: string;
}

/** A unit as the store keeps it: what it takes to start it again. */
export interface StoredUnit {
  unitId: string;
  command: string;
  args: string[];
  env: Record<string, string>;
}

/** The job as the store keeps it (a domain record, not a wire message). */
export interface StoredJobSpec {
  jobId: string;
  units: StoredUnit[];
  checkpointIntervalMs: number;
  fullEvery: number;
}

/**
 * What a restore needs besides pages: the job's units, where each ran at the
 * cut (unit -> node) and whose parts each node loads (writer -> holder). A
 * standalone agent leaves the maps empty.
 */
export interface EpochLayout {
  spec: StoredJobSpec;
  placement: Record<string, string>;
  partOwners: Record<string, string>;
}

export interface EpochManifest {
  format: typeof MANIFEST_FORMAT;
  jobId: string;
  epoch: bigint;
  parentEpoch: bigint | null;
  full: boolean;
  createdUnixMs: number;
  containers: ContainerMeta[];
  parts: PartInfo[];
  layout: EpochLayout;
  /** sha256 hex over every field above. */
  digest: string;
}

export type ManifestFields = Omit<EpochManifest, 'format' | 'digest'>;

type Fail = (message: string) => GridError;

const MAX_PAGES_PER_CONTAINER = 2 ** 32; // pages are u32 in the page table
const HEX_SHA256 = /^[0-9a-f]{64}$/;
const EMPTY_SHA256 = createHash('sha256').digest('hex');
const DECIMAL = /^(0|[1-9][0-9]{0,19})$/;

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function manifestBody(m: ManifestFields): Record<string, unknown> {
  return {
    format: MANIFEST_FORMAT,
    jobId: m.jobId,
    epoch: m.epoch.toString(),
    parentEpoch: m.parentEpoch === null ? null : m.parentEpoch.toString(),
    full: m.full,
    createdUnixMs: m.createdUnixMs,
    containers: m.containers.map((c) => ({ name: c.name, pageCount: c.pageCount })),
    parts: m.parts.map((p) => ({
      nodeId: p.nodeId, dataFile: p.dataFile, tableFile: p.tableFile, dataBytes: p.dataBytes,
      tableBytes: p.tableBytes, pageCount: p.pageCount, tableDigest: p.tableDigest,
    })),
    layout: layoutBody(m.layout),
  };
}

/** The layout in a fixed key order (the digest hashes the JSON text). */
function layoutBody(l: EpochLayout): EpochLayout {
  const sorted = (r: Record<string, string>) => Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return {
    spec: {
      jobId: l.spec.jobId,
      units: l.spec.units.map((u) => ({ unitId: u.unitId, command: u.command, args: [...u.args], env: sorted(u.env) })),
      checkpointIntervalMs: l.spec.checkpointIntervalMs,
      fullEvery: l.spec.fullEvery,
    },
    placement: sorted(l.placement),
    partOwners: sorted(l.partOwners),
  };
}

function manifestDigest(m: ManifestFields): string {
  return sha256Hex(JSON.stringify(manifestBody(m)));
}

/** Validates the fields and seals them with their digest; bad input is invalid-argument. */
export function buildManifest(fields: ManifestFields): EpochManifest {
  const fail: Fail = (message) => new GridError('invalid-argument', `bad epoch manifest: ${message}`);
  // Normalise the layout to exactly what a reader will parse back, so the digest matches.
  const normalised: ManifestFields = { ...fields, layout: parseLayout(fields.layout, fail) };
  checkFields(normalised, fail);
  return { format: MANIFEST_FORMAT, ...normalised, digest: manifestDigest(normalised) };
}

export function encodeManifest(m: EpochManifest): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify({ ...manifestBody(m), digest: m.digest }, null, 2)}\n`);
}

/** Parses and validates a manifest file's text; anything wrong is data-loss naming `where`. */
export function parseManifest(text: string, where: string): EpochManifest {
  const fail: Fail = (message) => new GridError('data-loss', `${where}: invalid manifest: ${message}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw fail(`not JSON (${(err as Error).message})`);
  }
  const o = record(raw, 'manifest', fail);
  if (o['format'] !== MANIFEST_FORMAT) throw fail(`format ${JSON.stringify(o['format'])}, expected ${MANIFEST_FORMAT}`);
  exactKeys(o, ['format', 'jobId', 'epoch', 'parentEpoch', 'full', 'createdUnixMs', 'containers', 'parts', 'layout', 'digest'], 'manifest', fail);
  const fields: ManifestFields = {
    jobId: str(o['jobId'], 'jobId', fail),
    epoch: decimal(o['epoch'], 'epoch', fail),
    parentEpoch: o['parentEpoch'] === null ? null : decimal(o['parentEpoch'], 'parentEpoch', fail),
    full: bool(o['full'], 'full', fail),
    createdUnixMs: o['createdUnixMs'] as number,
    containers: array(o['containers'], 'containers', fail).map((c, i) => parseContainer(c, `containers[${i}]`, fail)),
    parts: array(o['parts'], 'parts', fail).map((p, i) => parsePart(p, `parts[${i}]`, fail)),
    layout: parseLayout(o['layout'], fail),
  };
  checkFields(fields, fail);
  const digest = str(o['digest'], 'digest', fail);
  const expected = manifestDigest(fields);
  if (digest !== expected) throw fail(`digest mismatch: file says ${digest}, content hashes to ${expected}`);
  return { format: MANIFEST_FORMAT, ...fields, digest };
}

function parseContainer(raw: unknown, what: string, fail: Fail): ContainerMeta {
  const o = record(raw, what, fail);
  exactKeys(o, ['name', 'pageCount'], what, fail);
  return { name: str(o['name'], `${what}.name`, fail), pageCount: o['pageCount'] as number };
}

function parsePart(raw: unknown, what: string, fail: Fail): PartInfo {
  const o = record(raw, what, fail);
  exactKeys(o, ['nodeId', 'dataFile', 'tableFile', 'dataBytes', 'tableBytes', 'pageCount', 'tableDigest'], what, fail);
  return {
    nodeId: str(o['nodeId'], `${what}.nodeId`, fail),
    dataFile: str(o['dataFile'], `${what}.dataFile`, fail),
    tableFile: str(o['tableFile'], `${what}.tableFile`, fail),
    dataBytes: o['dataBytes'] as number,
    tableBytes: o['tableBytes'] as number,
    pageCount: o['pageCount'] as number,
    tableDigest: str(o['tableDigest'], `${what}.tableDigest`, fail),
  };
}

/** Semantic checks shared by build and parse (the numbers are checked here, not cast-trusted). */
function checkFields(m: ManifestFields, fail: Fail): void {
  name('job id', m.jobId, fail);
  if (typeof m.epoch !== 'bigint' || m.epoch < 0n || m.epoch > MAX_EPOCH) throw fail(`epoch ${String(m.epoch)} out of range`);
  if (typeof m.full !== 'boolean') throw fail('full must be a boolean');
  if (m.parentEpoch !== null && (typeof m.parentEpoch !== 'bigint' || m.parentEpoch < 0n || m.parentEpoch >= m.epoch)) {
    throw fail(`parent epoch ${String(m.parentEpoch)} must be below epoch ${m.epoch}`);
  }
  if (m.full !== (m.parentEpoch === null)) {
    throw fail(m.full ? 'a full epoch has no parent epoch' : 'an incremental epoch needs a parent epoch');
  }
  count('createdUnixMs', m.createdUnixMs, Number.MAX_SAFE_INTEGER, fail);
  if (!Array.isArray(m.containers) || m.containers.length > MAX_CONTAINERS) throw fail(`at most ${MAX_CONTAINERS} containers`);
  const containerNames = new Set<string>();
  for (const c of m.containers) {
    name('container', c.name, fail);
    count(`container ${c.name} pageCount`, c.pageCount, MAX_PAGES_PER_CONTAINER, fail);
    if (containerNames.has(c.name)) throw fail(`container ${c.name} listed twice`);
    containerNames.add(c.name);
  }
  if (!Array.isArray(m.parts)) throw fail('parts must be an array');
  const nodeIds = new Set<string>();
  for (const p of m.parts) checkPart(p, nodeIds, fail);
}

function checkPart(p: PartInfo, nodeIds: Set<string>, fail: Fail): void {
  name('node id', p.nodeId, fail);
  if (nodeIds.has(p.nodeId)) throw fail(`node ${p.nodeId} has two parts`);
  nodeIds.add(p.nodeId);
  if (p.dataFile !== dataFileName(p.nodeId) || p.tableFile !== tableFileName(p.nodeId)) {
    throw fail(`part ${p.nodeId}: files must be ${dataFileName(p.nodeId)} and ${tableFileName(p.nodeId)}`);
  }
  count(`part ${p.nodeId} pageCount`, p.pageCount, 2 ** 32 - 1, fail);
  count(`part ${p.nodeId} dataBytes`, p.dataBytes, Number.MAX_SAFE_INTEGER, fail);
  count(`part ${p.nodeId} tableBytes`, p.tableBytes, Number.MAX_SAFE_INTEGER, fail);
  // Zero pages have no data bytes (page-table.ts format 2): the table says which; part-reader checks the sum.
  if (p.dataBytes % PAGE_BYTES !== 0 || p.dataBytes > p.pageCount * PAGE_BYTES) {
    throw fail(`part ${p.nodeId}: dataBytes ${p.dataBytes} is not a multiple of ${PAGE_BYTES} up to pageCount ${p.pageCount} x ${PAGE_BYTES}`);
  }
  if (typeof p.tableDigest !== 'string' || !HEX_SHA256.test(p.tableDigest)) throw fail(`part ${p.nodeId}: tableDigest is not sha256 hex`);
  // A part without files (epoch-writer.ts invariant 5) holds no page at all.
  if (p.tableBytes === 0 && (p.pageCount !== 0 || p.dataBytes !== 0 || p.tableDigest !== EMPTY_SHA256)) {
    throw fail(`part ${p.nodeId}: an empty table (tableBytes 0) must have no pages, no data bytes and the sha256 of no bytes`);
  }
}

function name(what: string, value: unknown, fail: Fail): void {
  try {
    checkName(what, value as string);
  } catch (err) {
    throw fail((err as Error).message);
  }
}

function count(what: string, value: unknown, max: number, fail: Fail): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
    throw fail(`${what} ${JSON.stringify(value)} must be an integer from 0 to ${max}`);
  }
}

function record(raw: unknown, what: string, fail: Fail): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw fail(`${what} must be an object`);
  return raw as Record<string, unknown>;
}

function exactKeys(o: Record<string, unknown>, keys: string[], what: string, fail: Fail): void {
  const actual = Object.keys(o).sort();
  const wanted = [...keys].sort();
  if (actual.join(',') !== wanted.join(',')) throw fail(`${what} has keys [${actual.join(', ')}], expected [${wanted.join(', ')}]`);
}

function array(raw: unknown, what: string, fail: Fail): unknown[] {
  if (!Array.isArray(raw)) throw fail(`${what} must be an array`);
  return raw;
}

function str(raw: unknown, what: string, fail: Fail): string {
  if (typeof raw !== 'string') throw fail(`${what} must be a string`);
  return raw;
}

function bool(raw: unknown, what: string, fail: Fail): boolean {
  if (typeof raw !== 'boolean') throw fail(`${what} must be a boolean`);
  return raw;
}

function decimal(raw: unknown, what: string, fail: Fail): bigint {
  if (typeof raw !== 'string' || !DECIMAL.test(raw)) throw fail(`${what} must be a decimal string`);
  const value = BigInt(raw);
  if (value > MAX_EPOCH) throw fail(`${what} ${raw} exceeds 2^64-1`);
  return value;
}

/** Checks a layout record's shape (from a caller or a file); the result has exactly the known keys. */
function parseLayout(raw: unknown, fail: Fail): EpochLayout {
  const l = record(raw, 'layout', fail);
  exactKeys(l, ['spec', 'placement', 'partOwners'], 'layout', fail);
  const s = record(l['spec'], 'layout.spec', fail);
  exactKeys(s, ['jobId', 'units', 'checkpointIntervalMs', 'fullEvery'], 'layout.spec', fail);
  const strings = (v: unknown, what: string): Record<string, string> => {
    const r = record(v, what, fail);
    for (const [k, x] of Object.entries(r)) if (typeof x !== 'string') throw fail(`${what}.${k} must be a string`);
    return r as Record<string, string>;
  };
  return {
    spec: {
      jobId: str(s['jobId'], 'layout.spec.jobId', fail),
      units: array(s['units'], 'layout.spec.units', fail).map((u, i) => {
        const x = record(u, `layout.spec.units[${i}]`, fail);
        exactKeys(x, ['unitId', 'command', 'args', 'env'], `layout.spec.units[${i}]`, fail);
        const args = array(x['args'], `layout.spec.units[${i}].args`, fail);
        if (!args.every((a) => typeof a === 'string')) throw fail(`layout.spec.units[${i}].args must be strings`);
        return { unitId: str(x['unitId'], `layout.spec.units[${i}].unitId`, fail), command: str(x['command'], `layout.spec.units[${i}].command`, fail), args: args as string[], env: strings(x['env'], `layout.spec.units[${i}].env`) };
      }),
      checkpointIntervalMs: counted('layout.spec.checkpointIntervalMs', s['checkpointIntervalMs'], fail),
      fullEvery: counted('layout.spec.fullEvery', s['fullEvery'], fail),
    },
    placement: strings(l['placement'], 'layout.placement'),
    partOwners: strings(l['partOwners'], 'layout.partOwners'),
  };
}

function counted(what: string, value: unknown, fail: Fail): number {
  count(what, value, Number.MAX_SAFE_INTEGER, fail);
  return value as number;
}
