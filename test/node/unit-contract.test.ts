import { describe, expect, it } from 'vitest';
import { UnitExit, UnitLimit } from '../../src/gen/gridckpt/v1/unit.js';
import { DEFAULT_LIMITS, MAX_READ_PAGES } from '../../src/node/config.js';
import { PAGE_BYTES } from '../../src/node/memory/page-memory.js';
import { EXIT_AGENT_LOST } from '../../src/unit/client.js';

// The unit API's contract as unit.proto writes it for units in any language
// must be what the agent does: its limits and exit codes are the agent's own.

describe('unit.proto: the contract matches the agent', () => {
  it('states the agent\'s default limits and the lifeline\'s exit code', () => {
    expect({
      writes: UnitLimit.UNIT_LIMIT_BATCH_WRITES, bytes: UnitLimit.UNIT_LIMIT_BATCH_BYTES, containers: UnitLimit.UNIT_LIMIT_CONTAINERS_PER_JOB,
      pages: UnitLimit.UNIT_LIMIT_PAGES_PER_CONTAINER, pageBytes: UnitLimit.UNIT_LIMIT_PAGE_BYTES,
    }).toEqual({
      writes: DEFAULT_LIMITS.maxBatchWrites, bytes: DEFAULT_LIMITS.maxBatchBytes, containers: DEFAULT_LIMITS.maxContainersPerJob,
      pages: DEFAULT_LIMITS.maxPagesPerContainer, pageBytes: PAGE_BYTES,
    });
    expect([UnitExit.UNIT_EXIT_AGENT_LOST, EXIT_AGENT_LOST]).toEqual([75, 75]);
    // ReadContainer (node_agent.proto): 1,023 pages, a reply within a default client's 4 MiB.
    expect(MAX_READ_PAGES).toBe(1023);
    expect(MAX_READ_PAGES * PAGE_BYTES + 16).toBeLessThan(4 * 1024 * 1024);
  });
});
