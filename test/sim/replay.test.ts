import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runSeed } from '../../src/sim/run.js';

// ARCHITECTURE §8: a seed replays byte for byte. The trace holds every call,
// answer and fault with its simulated instant, so any nondeterminism (a Map
// iterated in insertion order that differs, a real clock, Math.random) shows.

const main = 'dist/src/sim/main.js';

describe('sim replay', () => {
  it('the same seed gives the same trace twice, and another seed a different one', () => {
    const a = runSeed({ seed: 7, trace: true });
    const b = runSeed({ seed: 7, trace: true });
    const c = runSeed({ seed: 8, trace: true });
    expect(a.trace.length).toBeGreaterThan(100);
    expect(b.trace).toEqual(a.trace);
    expect(b.events).toBe(a.events);
    expect(c.trace).not.toEqual(a.trace);
  });

  it('npm run sim -- --seed S prints the same bytes on every run, ending with its verdict', () => {
    const run = () => execFileSync(process.execPath, [main, '--seed', '12'], { encoding: 'utf8' });
    const first = run();
    expect(run()).toBe(first);
    expect(first.trim().split('\n').at(-1)).toMatch(/^sim: seed 12 passed \(\d+ events, \d+ ms simulated\)$/);
    expect(first).toContain('FAULT ');
  });

  it('a batch ends with the summary line, and --json carries seeds, failed, events, faults by kind and failedSeeds', () => {
    const text = execFileSync(process.execPath, [main, '--seeds', '6', '--from', '1000', '--workers', '1'], { encoding: 'utf8' });
    expect(text.trim().split('\n').at(-1)).toMatch(/^sim: 6 seeds, 0 failed, \d+ events, \d+ faults injected/);
    const json = JSON.parse(execFileSync(process.execPath, [main, '--seeds', '6', '--from', '1000', '--workers', '1', '--json'], { encoding: 'utf8' })) as Record<string, unknown>;
    expect(json).toMatchObject({ seeds: 6, failed: 0, failedSeeds: [] });
    expect(Number(json.events)).toBeGreaterThan(1000);
    expect(Object.keys(json.faults as object).length).toBeGreaterThan(0);
  });

  it('a bad flag or mutant name is refused with a message naming it', () => {
    const fail = (args: string[]) => {
      try {
        execFileSync(process.execPath, [main, ...args], { encoding: 'utf8', stdio: 'pipe' });
      } catch (err) {
        return String((err as { stderr: string }).stderr);
      }
      throw new Error('expected a failure');
    };
    expect(fail(['--seeds', 'ten'])).toContain('--seeds must be an integer >= 1, got "ten"');
    expect(fail(['--mutant', 'no-such'])).toContain('unknown mutant "no-such"');
  });
});
