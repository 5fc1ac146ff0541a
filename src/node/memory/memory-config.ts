import { invalidArgument } from '../../common/errors.js';
import { checkName } from '../../common/names.js';
import { describeValue } from './checks.js';
import { PAGE_BYTES } from './swap-port.js';
import type { PageMemoryConfig } from './types.js';

// Validation of PageMemory's bounds (CONVENTIONS §6): every limit a positive
// integer, and a budget of at least MIN_FRAMES frames.

export const MIN_FRAMES = 16;
/** Page indices and frame indices live in Int32Arrays. */
export const MAX_INDEX = 0x7fffffff;

export function validateConfig(config: PageMemoryConfig): PageMemoryConfig {
  checkName('node id', config.nodeId);
  const positive = (what: keyof PageMemoryConfig, max = Number.MAX_SAFE_INTEGER): void => {
    const v = config[what];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > max) {
      throw invalidArgument(`bad page memory ${what} ${describeValue(v)}: expected an integer from 1 to ${max}`);
    }
  };
  positive('budgetBytes');
  positive('maxContainersPerJob');
  positive('maxPagesPerContainer', MAX_INDEX);
  positive('maxBatchWrites');
  positive('maxBatchBytes');
  const frames = Math.floor(config.budgetBytes / PAGE_BYTES);
  if (frames < MIN_FRAMES) {
    throw invalidArgument(
      `memory budget of ${config.budgetBytes} bytes holds ${frames} frames of ${PAGE_BYTES} bytes; ` +
        `at least ${MIN_FRAMES} (${MIN_FRAMES * PAGE_BYTES} bytes) are needed`,
    );
  }
  if (frames > MAX_INDEX) throw invalidArgument(`memory budget of ${config.budgetBytes} bytes is too large`);
  return config;
}

