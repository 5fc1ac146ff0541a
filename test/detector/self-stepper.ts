import { Monitor, type MonitorInput, type MonitorOutput, type VerdictChange } from '../../src/detector/monitor.js';

/**
 * Steps a monitor the way a serial driver steps the core holding it with the own-pause check on: a
 * tick at every nextStepMs() (its own regular ticks and crossings) before
 * each input. pause(ms) is the process stopped: nothing steps, and the
 * overdue timer fires once, late, when the next call runs.
 */
export class SelfStepper {
  readonly changes: VerdictChange[] = [];
  readonly outputs: Array<{ nowMs: number; input: MonitorInput; out: MonitorOutput }> = [];
  nowMs = 0;

  /** onStep runs after each step (and its invariant check), for checks against a model. */
  constructor(readonly monitor: Monitor, private readonly onStep?: (input: MonitorInput, nowMs: number, out: MonitorOutput) => void) {}

  /** Runs until `untilMs`, stepping at each nextStepMs() on the way. */
  runTo(untilMs: number): void {
    for (let d = this.monitor.nextStepMs(); d !== null && d <= untilMs; d = this.monitor.nextStepMs()) {
      this.step({ kind: 'tick' }, Math.max(d, this.nowMs));
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
  }

  feed(input: MonitorInput, atMs: number): MonitorOutput {
    this.runTo(atMs);
    return this.step(input, atMs);
  }

  pause(ms: number): void {
    this.nowMs += ms;
  }

  private step(input: MonitorInput, atMs: number): MonitorOutput {
    const out = this.monitor.step(input, atMs);
    this.monitor.checkInvariants();
    this.nowMs = atMs;
    this.changes.push(...out.changes);
    this.outputs.push({ nowMs: atMs, input, out });
    this.onStep?.(input, atMs, out);
    return out;
  }
}
