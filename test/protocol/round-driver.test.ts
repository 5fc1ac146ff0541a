import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/common/log.js';
import { DEFAULT_ROUND_CONFIG, type RoundOutcome } from '../../src/protocol/core/round.js';
import { RoundDriver } from '../../src/protocol/round-driver.js';
import { realClock, realTimers } from '../../src/runtime/real-ports.js';

// The RoundDriver runs on the one SerialDriver: the manifest is persisted and
// safe before the round counts as committed, inputs meanwhile wait their
// turn, and a start while the manifest is being written is refused at once
// with a reason (ARCHITECTURE §4; CONVENTIONS §2).

describe('RoundDriver on the serial driver', () => {
  it('commits only after the manifest persist resolved; a start meanwhile is refused naming the write', async () => {
    const log: string[] = [];
    let release!: () => void;
    const persisted = new Promise<void>((r) => { release = r; });
    let begun!: () => void;
    const persistBegun = new Promise<void>((r) => { begun = r; });
    const d = new RoundDriver('job', DEFAULT_ROUND_CONFIG, {
      prepare: async (to) => { log.push(`prepare ${to}`); return { pages: 1, bytes: 4096, digest: `d-${to}` }; },
      commit: async (to) => { log.push(`commit ${to}`); return { part: to, digest: `d-${to}` }; },
      abort: async () => undefined,
      persist: async () => { log.push('persist begins'); begun(); await persisted; log.push('persist done'); },
      onReply: (r) => log.push(`reply ${r.kind}`),
    }, { clock: realClock, timers: realTimers }, silentLogger());
    const outcome = d.start({ kind: 'start', roundId: 'r1', jobId: 'job', epoch: 1n, parentEpoch: null, participants: ['a', 'b'], full: true });
    await persistBegun;
    expect(() => d.start({ kind: 'start', roundId: 'r2', jobId: 'job', epoch: 2n, parentEpoch: 1n, participants: ['a'], full: false }))
      .toThrow(/writing the manifest of round r1/);
    expect(log).not.toContain('reply committed');
    release();
    const o: RoundOutcome = await outcome;
    expect(o.kind).toBe('committed');
    expect(log.indexOf('persist done')).toBeLessThan(log.indexOf('reply committed'));
    // The driver goes on: the next round starts.
    const next = d.start({ kind: 'start', roundId: 'r2', jobId: 'job', epoch: 2n, parentEpoch: 1n, participants: ['a'], full: false });
    expect((await next).kind).toBe('committed');
  });

  it('a failed manifest write aborts the round, and a refused start leaves the driver usable', async () => {
    const d = new RoundDriver('job', DEFAULT_ROUND_CONFIG, {
      prepare: async () => ({ pages: 0, bytes: 0, digest: '' }),
      commit: async () => ({ part: {}, digest: '' }),
      abort: async () => undefined,
      persist: async () => { throw new Error('ENOSPC: no space left on device'); },
      onReply: () => undefined,
    }, { clock: realClock, timers: realTimers }, silentLogger());
    expect(() => d.start({ kind: 'start', roundId: 'bad', jobId: 'job', epoch: 0n, parentEpoch: null, participants: ['a'], full: true })).toThrow();
    const o = await d.start({ kind: 'start', roundId: 'r1', jobId: 'job', epoch: 1n, parentEpoch: null, participants: ['a'], full: true });
    expect(o).toMatchObject({ kind: 'aborted', phase: 'writingManifest' });
    expect(o.kind === 'aborted' && o.reason).toContain('ENOSPC');
  });

  it('passes each PREPARED and DURABLE digest to the core: a part that is not the snapshot prepared aborts, no manifest (invariant 10)', async () => {
    const persisted: bigint[] = [];
    const aborted: string[] = [];
    const d = new RoundDriver('job', DEFAULT_ROUND_CONFIG, {
      prepare: async (to) => ({ pages: 1, bytes: 4096, digest: `snap-${to}` }),
      commit: async (to) => ({ part: { to }, digest: to === 'b' ? 'something-else' : `snap-${to}` }),
      abort: async (to) => { aborted.push(to); },
      persist: async (p) => { persisted.push(p.epoch); },
      onReply: () => undefined,
    }, { clock: realClock, timers: realTimers }, silentLogger());
    const o = await d.start({ kind: 'start', roundId: 'r1', jobId: 'job', epoch: 1n, parentEpoch: null, participants: ['a', 'b'], full: true });
    expect(o).toMatchObject({ kind: 'aborted', phase: 'committing', culprits: ['b'] });
    expect(o.kind === 'aborted' && o.reason).toBe(
      'participant "b" wrote a part with digest something-else, not the digest snap-b it prepared: the part is not the snapshot prepared');
    expect(persisted).toEqual([]);
    await d.whenIdle();
    expect(aborted.sort()).toEqual(['a', 'b']);
  });
});
