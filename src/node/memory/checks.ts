import { GridError, invalidArgument } from '../../common/errors.js';
import type { PageTable } from './page-table.js';
import { PAGE_BYTES } from './swap-port.js';

// Input checks shared by PageMemory's operations. Each throws a GridError
// naming the bad value and is called before anything changes.

export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  return String(value);
}

/** A page, offset, length or count: a non-negative safe integer. */
export function checkIndex(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalidArgument(`bad ${what} ${describeValue(value)}: expected a non-negative integer`);
  }
  return value;
}

export function checkPage(table: PageTable, page: unknown): number {
  const p = checkIndex('page', page);
  if (p >= table.pageCount) {
    throw invalidArgument(`page ${p} out of range for container ${JSON.stringify(table.name)} (${table.pageCount} pages)`);
  }
  return p;
}

export function checkRange(offset: unknown, length: unknown): void {
  const o = checkIndex('offset', offset);
  const n = checkIndex('length', length);
  if (o + n > PAGE_BYTES) {
    throw invalidArgument(`range ${o}+${n} runs past the ${PAGE_BYTES}-byte page`);
  }
}

export function checkPageRun(table: PageTable, firstPage: unknown, count: unknown): void {
  const first = checkIndex('first page', firstPage);
  const n = checkIndex('page count', count);
  if (first + n > table.pageCount) {
    throw invalidArgument(
      `pages ${first}+${n} run past container ${JSON.stringify(table.name)} (${table.pageCount} pages)`,
    );
  }
}

export function resourceExhausted(message: string): GridError {
  return new GridError('resource-exhausted', message);
}

export function alreadyExists(message: string): GridError {
  return new GridError('already-exists', message);
}
