// Output of the benchmarks. Every figure is one line,
//   BENCH <name> <value> <unit> ratio=<r> ref=<reference> target=<t> met=<yes|no|n/a>
// with no spaces inside a field, so the line splits on spaces. The reference
// is always measured in the same run as the figure. Lines that do not start
// with BENCH are context for humans.

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface BenchFigure {
  name: string;
  value: number;
  unit: string;
  ratio: number;
  /** What the figure is compared with, including its measured value; spaces are replaced. */
  ref: string;
  /** e.g. "ratio>=0.7"; "none" for a context figure. */
  target: string;
  /** undefined for a context figure (prints met=n/a). */
  met: boolean | undefined;
}

export function benchLine(f: BenchFigure): string {
  const met = f.met === undefined ? 'n/a' : f.met ? 'yes' : 'no';
  return `BENCH ${f.name} ${num(f.value)} ${f.unit} ratio=${num(f.ratio)} ref=${noSpaces(f.ref)} target=${noSpaces(f.target)} met=${met}`;
}

export function info(line: string): void {
  process.stdout.write(`  ${line}\n`);
}

export function printBench(f: BenchFigure): void {
  process.stdout.write(`${benchLine(f)}\n`);
}

/** A figure that could not be measured here: value and ratio "n/a", `why` in place of the reference. */
export function printUnmeasured(name: string, unit: string, why: string, target: string): void {
  process.stdout.write(`BENCH ${name} n/a ${unit} ratio=n/a ref=${noSpaces(why)} target=${noSpaces(target)} met=n/a\n`);
}

/** Three significant decimals for small numbers, fewer for large ones. */
export function num(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(1);
  if (a >= 10) return x.toFixed(2);
  return x.toFixed(3);
}

function noSpaces(s: string): string {
  return s.replace(/\s+/g, '_');
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of nothing');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function mibPerS(bytes: number, ms: number): number {
  return bytes / MiB / (ms / 1000);
}

export function gbPerS(bytes: number, ms: number): number {
  return bytes / 1e9 / (ms / 1000);
}

/** "1gib" for 1 GiB, "256mib" otherwise: the suffix of a figure's name. */
export function sizeLabel(bytes: number): string {
  return bytes % GiB === 0 ? `${bytes / GiB}gib` : `${Math.round(bytes / MiB)}mib`;
}

export function list(xs: readonly number[], digits = 1): string {
  return xs.map((x) => x.toFixed(digits)).join(', ');
}
