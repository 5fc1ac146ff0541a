import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_DRIVER_QUEUE, SerialDriver, type CoreStep, type DriverPorts, type PureCore } from '../../src/runtime/serial-driver.js';
import type { Clock, TimerPort } from '../../src/runtime/ports.js';

// The serial driver (src/runtime/serial-driver.ts) over test doubles of its
// ports: a manual clock, a manual timer list, and persist / send / reply
// ports that write one shared log, so every test compares the exact order
// in which the driver fed the core and performed its actions. The cores are
// tiny scripted fakes: each input names the step it returns. The duties
// checked are those of the driver's header (the etcd raft Ready contract):
// persist, wait, then send, then reply; a failed persist drops the step's
// sends and replies and feeds the failure first; persisted inputs come after
// the sends; one input at a time; one timer at the core's next deadline.

type In = string;
type Out = CoreStep<string, string, string>;

/** A core that logs what it is fed and answers from a script (by input) or with nothing. */
class ScriptedCore implements PureCore<In, string, string, string> {
  deadline: number | null = null;
  readonly fed: Array<{ input: In; nowMs: number }> = [];
  invariantsChecked = 0;
  constructor(private readonly log: string[], private readonly script: Record<string, Partial<Out> & { deadline?: number | null }> = {}) {}

  step(input: In, nowMs: number): Out {
    this.log.push(`step ${input}@${nowMs}`);
    this.fed.push({ input, nowMs });
    const s = this.script[input] ?? {};
    if (s.deadline !== undefined) this.deadline = s.deadline;
    return { persist: [...(s.persist ?? [])], send: [...(s.send ?? [])], reply: [...(s.reply ?? [])] };
  }

  nextDeadline(): number | null {
    return this.deadline;
  }

  checkInvariants(): void {
    this.invariantsChecked += 1;
  }
}

/** A manual clock and timer list: timers fire only when the test says so. */
class ManualTime implements Clock, TimerPort {
  nowMsValue = 0;
  private nextId = 1;
  readonly timers = new Map<number, { at: number; callback: () => void }>();
  readonly armed: Array<{ id: number; delayMs: number }> = [];
  readonly cleared: number[] = [];

  nowMs(): number { return this.nowMsValue; }
  wallMs(): number { return 1_700_000_000_000 + this.nowMsValue; }

  setTimer(callback: () => void, delayMs: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.nowMsValue + delayMs, callback });
    this.armed.push({ id, delayMs });
    return id;
  }

  clearTimer(handle: unknown): void {
    this.cleared.push(handle as number);
    this.timers.delete(handle as number);
  }

  /** Moves time to t, firing due timers in order, each at its own instant. */
  advanceTo(t: number): void {
    for (;;) {
      const due = [...this.timers].filter(([, x]) => x.at <= t).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.nowMsValue = Math.max(this.nowMsValue, due[1].at);
      due[1].callback();
    }
    this.nowMsValue = t;
  }
}

interface Harness {
  log: string[];
  core: ScriptedCore;
  time: ManualTime;
  driver: SerialDriver<In, string, string, string>;
  /** Persists in flight, in the order they were asked. */
  inFlight: Array<{ p: string; done: (e: string | null) => void }>;
  /** Completes the persist of p (null: ok, else the failure). */
  complete: (p: string, error?: string | null) => void;
}

function harness(script: ConstructorParameters<typeof ScriptedCore>[1] = {}, over: Partial<DriverPorts<In, string, string, string>> = {}): Harness {
  const log: string[] = [];
  const core = new ScriptedCore(log, script);
  const time = new ManualTime();
  const inFlight: Harness['inFlight'] = [];
  const driver = new SerialDriver<In, string, string, string>(core, {
    clock: time,
    timers: time,
    persist: (p, done) => { log.push(`persist ${p}`); inFlight.push({ p, done }); },
    send: (s) => void log.push(`send ${s}`),
    reply: (r) => void log.push(`reply ${r}`),
    persistFailed: (p, reason) => `failed(${p}: ${reason})`,
    persisted: (p) => `persisted(${p})`,
    tick: () => 'tick',
    ...over,
  });
  const complete = (p: string, error: string | null = null): void => {
    const i = inFlight.findIndex((x) => x.p === p);
    if (i < 0) throw new Error(`no persist ${p} in flight`);
    const [x] = inFlight.splice(i, 1);
    x!.done(error);
  };
  return { log, core, time, driver, inFlight, complete };
}

describe('SerialDriver: persist, then send, then reply', () => {
  it('a step without persists delivers its sends, then its replies, at once', () => {
    const h = harness({ a: { send: ['s1', 's2'], reply: ['r1'] } });
    h.driver.input('a');
    expect(h.log).toEqual(['step a@0', 'send s1', 'send s2', 'reply r1']);
  });

  it('sends and replies wait until every persist of the step is safe', () => {
    const h = harness({ a: { persist: ['p1', 'p2'], send: ['s1'], reply: ['r1'] } });
    h.driver.input('a');
    expect(h.log).toEqual(['step a@0', 'persist p1', 'persist p2']);
    h.complete('p2');
    expect(h.log).toEqual(['step a@0', 'persist p1', 'persist p2']); // one of two is not enough
    h.complete('p1');
    expect(h.log).toEqual([
      'step a@0', 'persist p1', 'persist p2',
      'send s1', 'reply r1',
      // persisted inputs come after the step's sends and replies, in the step's persist order
      'step persisted(p1)@0', 'step persisted(p2)@0',
    ]);
  });

  it('a persisted port that returns null feeds nothing', () => {
    const h = harness({ a: { persist: ['p1'], send: ['s1'] } }, { persisted: () => null });
    h.driver.input('a');
    h.complete('p1');
    expect(h.log).toEqual(['step a@0', 'persist p1', 'send s1']);
    expect(h.driver.steps).toBe(1);
  });

  it('without a persisted port, a persist completes the step silently', () => {
    const h = harness({ a: { persist: ['p1'], reply: ['r1'] } }, { persisted: undefined });
    h.driver.input('a');
    h.complete('p1');
    expect(h.log).toEqual(['step a@0', 'persist p1', 'reply r1']);
  });

  it('a failed persist drops the step\'s sends and replies and feeds the failure first, before inputs queued meanwhile', () => {
    const h = harness({ a: { persist: ['p1', 'p2'], send: ['s1'], reply: ['r1'] } });
    h.driver.input('a');
    h.driver.input('b'); // queued during the persist
    h.complete('p1', 'ENOSPC');
    h.complete('p2');
    expect(h.log).toEqual([
      'step a@0', 'persist p1', 'persist p2',
      'step failed(p1: ENOSPC)@0', 'step b@0',
    ]);
    expect(h.log.some((l) => l.startsWith('send') || l.startsWith('reply') || l.startsWith('step persisted'))).toBe(false);
  });

  it('every failed persist of a step is fed, in the order the failures came', () => {
    const h = harness({ a: { persist: ['p1', 'p2', 'p3'], send: ['s1'] } });
    h.driver.input('a');
    h.complete('p3', 'EIO');
    h.complete('p2');
    h.complete('p1', 'ENOSPC');
    expect(h.log.slice(4)).toEqual(['step failed(p3: EIO)@0', 'step failed(p1: ENOSPC)@0']);
  });

  it('a step fed a failure may persist again, and its own actions follow the same rule', () => {
    const h = harness({ a: { persist: ['p1'], send: ['s1'] }, 'failed(p1: EIO)': { persist: ['p1-retry'], reply: ['r-after-retry'] } });
    h.driver.input('a');
    h.complete('p1', 'EIO');
    expect(h.log).toEqual(['step a@0', 'persist p1', 'step failed(p1: EIO)@0', 'persist p1-retry']);
    h.complete('p1-retry');
    expect(h.log.slice(4)).toEqual(['reply r-after-retry', 'step persisted(p1-retry)@0']);
  });

  it('a persist that completes synchronously (inside the port call) keeps the same order', () => {
    const log: string[] = [];
    const core = new ScriptedCore(log, { a: { persist: ['p1', 'p2'], send: ['s1'], reply: ['r1'] } });
    const time = new ManualTime();
    const driver = new SerialDriver<In, string, string, string>(core, {
      clock: time, timers: time,
      persist: (p, done) => { log.push(`persist ${p}`); done(null); },
      send: (s) => void log.push(`send ${s}`),
      reply: (r) => void log.push(`reply ${r}`),
      persistFailed: (p, reason) => `failed(${p}: ${reason})`,
      persisted: (p) => `persisted(${p})`,
      tick: () => 'tick',
    });
    driver.input('a');
    driver.input('b');
    expect(log).toEqual(['step a@0', 'persist p1', 'persist p2', 'send s1', 'reply r1', 'step persisted(p1)@0', 'step persisted(p2)@0', 'step b@0']);
  });
});

describe('SerialDriver: one input at a time', () => {
  it('an input queued during a persist waits for it, then for the persisted inputs', () => {
    const h = harness({ a: { persist: ['p1'], send: ['s1'], reply: ['r1'] }, b: { send: ['s-b'] } });
    h.driver.input('a');
    h.driver.input('b');
    h.driver.input('c');
    expect(h.core.fed.map((x) => x.input)).toEqual(['a']);
    h.complete('p1');
    expect(h.log).toEqual(['step a@0', 'persist p1', 'send s1', 'reply r1', 'step persisted(p1)@0', 'step b@0', 'send s-b', 'step c@0']);
  });

  it('an input queued by the core\'s own send (a synchronous port) is fed after the step, never inside it', () => {
    const log: string[] = [];
    let depth = 0;
    const core = new ScriptedCore(log, { a: { send: ['s1'] } });
    const wrapped: PureCore<In, string, string, string> = {
      step: (i, t) => {
        depth += 1;
        expect(depth, 'the core is re-entered').toBe(1);
        try { return core.step(i, t); } finally { depth -= 1; }
      },
      nextDeadline: () => core.nextDeadline(),
      checkInvariants: () => core.checkInvariants(),
    };
    const time = new ManualTime();
    const driver: SerialDriver<In, string, string, string> = new SerialDriver(wrapped, {
      clock: time, timers: time,
      persist: (_p, done) => done(null),
      send: (s) => { log.push(`send ${s}`); if (s === 's1') driver.input('echo'); },
      reply: (r) => void log.push(`reply ${r}`),
      persistFailed: (p) => p, tick: () => 'tick',
    });
    driver.input('a');
    expect(log).toEqual(['step a@0', 'send s1', 'step echo@0']);
  });

  it('feeds each input at the clock\'s time, floored to whole ms', () => {
    const h = harness();
    h.time.nowMsValue = 10.7;
    h.driver.input('a');
    h.time.nowMsValue = 11.2;
    h.driver.input('b');
    expect(h.core.fed).toEqual([{ input: 'a', nowMs: 10 }, { input: 'b', nowMs: 11 }]);
  });

  it('an input waiting behind a persist is fed at the time it is fed, not the time it came', () => {
    const h = harness({ a: { persist: ['p1'] } }, { persisted: () => null });
    h.driver.input('a');
    h.time.nowMsValue = 40;
    h.driver.input('b');
    h.time.nowMsValue = 90;
    h.complete('p1');
    expect(h.core.fed).toEqual([{ input: 'a', nowMs: 0 }, { input: 'b', nowMs: 90 }]);
  });

  it('calls afterStep after each step with its input, before the step\'s actions', () => {
    const after: string[] = [];
    const h = harness({ a: { send: ['s1'] } }, { afterStep: (i) => void after.push(i) });
    const orig = h.log.push.bind(h.log);
    h.log.push = (...xs: string[]) => { after.push(`log:${xs.join()}`); return orig(...xs); };
    h.driver.input('a');
    expect(after).toEqual(['log:step a@0', 'a', 'log:send s1']);
  });

  it(`bounds its queue: an input past MAX_DRIVER_QUEUE (${MAX_DRIVER_QUEUE}) while the core waits on a persist throws`, () => {
    const h = harness({ a: { persist: ['p1'] } });
    h.driver.input('a');
    for (let i = 0; i < MAX_DRIVER_QUEUE; i++) h.driver.input('x');
    expect(() => h.driver.input('one-too-many')).toThrow(/driver queue over/);
  });
});

describe('SerialDriver: the timer at the core\'s next deadline', () => {
  it('arms one timer at nextDeadline after a step, and its firing feeds tick at that time', () => {
    const h = harness({ a: { deadline: 100 }, tick: { deadline: null, send: ['on-tick'] } });
    h.time.nowMsValue = 30;
    h.driver.input('a');
    expect(h.time.armed).toEqual([{ id: 1, delayMs: 70 }]);
    h.time.advanceTo(99);
    expect(h.core.fed.map((x) => x.input)).toEqual(['a']);
    h.time.advanceTo(150);
    expect(h.core.fed).toEqual([{ input: 'a', nowMs: 30 }, { input: 'tick', nowMs: 100 }]);
    expect(h.log.at(-1)).toBe('send on-tick');
    expect(h.time.timers.size).toBe(0); // deadline null: nothing armed
  });

  it('keeps the timer while the deadline stays the same, and moves it when the deadline moves', () => {
    const h = harness({ a: { deadline: 100 }, b: {}, c: { deadline: 60 }, d: { deadline: null } });
    h.driver.input('a');
    h.driver.input('b');
    expect(h.time.armed).toEqual([{ id: 1, delayMs: 100 }]);
    h.time.nowMsValue = 20;
    h.driver.input('c');
    expect(h.time.cleared).toEqual([1]);
    expect(h.time.armed).toEqual([{ id: 1, delayMs: 100 }, { id: 2, delayMs: 40 }]);
    h.driver.input('d');
    expect(h.time.cleared).toEqual([1, 2]);
    expect(h.time.timers.size).toBe(0);
  });

  it('a deadline already past is armed with delay 0', () => {
    const h = harness({ a: { deadline: 5 } });
    h.time.nowMsValue = 9;
    h.driver.input('a');
    expect(h.time.armed).toEqual([{ id: 1, delayMs: 0 }]);
  });

  it('a timer that fires while a persist is in flight queues its tick behind it', () => {
    const h = harness({ a: { deadline: 50 }, b: { persist: ['p1'], send: ['s-b'] } });
    h.driver.input('a');
    h.time.nowMsValue = 40;
    h.driver.input('b');
    h.time.advanceTo(60);
    expect(h.core.fed.map((x) => x.input)).toEqual(['a', 'b']);
    h.complete('p1');
    expect(h.log.slice(-3)).toEqual(['send s-b', 'step persisted(p1)@60', 'step tick@60']);
  });

  it('the deadline set by a step that persists is armed once the persist completes', () => {
    const h = harness({ a: { persist: ['p1'], deadline: 500 } }, { persisted: () => null });
    h.driver.input('a');
    expect(h.time.armed).toEqual([]);
    h.time.nowMsValue = 100;
    h.complete('p1');
    expect(h.time.armed).toEqual([{ id: 1, delayMs: 400 }]);
  });
});

describe('SerialDriver: stop', () => {
  it('drops queued inputs, later inputs, the timer, and the actions of a persist still in flight', () => {
    const h = harness({ a: { persist: ['p1'], send: ['s1'], reply: ['r1'] }, x: { deadline: 1000 } });
    h.driver.input('x');
    h.driver.input('a');
    h.driver.input('b');
    h.driver.stop();
    expect(h.time.cleared).toEqual([1]);
    h.complete('p1');
    h.driver.input('c');
    h.time.advanceTo(5000);
    expect(h.log).toEqual(['step x@0', 'step a@0', 'persist p1']);
    expect(h.time.timers.size).toBe(0);
  });

  it('a failed persist after stop feeds nothing', () => {
    const h = harness({ a: { persist: ['p1'] } });
    h.driver.input('a');
    h.driver.stop();
    h.complete('p1', 'EIO');
    expect(h.core.fed.map((x) => x.input)).toEqual(['a']);
  });
});

describe('SerialDriver under random schedules', () => {
  // Random scripts of steps (each with 0-2 persists, some failing, 0-2 sends and replies), inputs
  // arriving at random moments, persists completing in random order. A naive model of the
  // contract checks the log: each step's sends and replies come after all its persists completed,
  // only if none failed, and before any later step; failures are fed before anything queued.
  const stepArb = fc.record({
    persist: fc.array(fc.boolean(), { maxLength: 2 }), // true: this persist fails
    send: fc.integer({ min: 0, max: 2 }),
    reply: fc.integer({ min: 0, max: 2 }),
  });
  const actionArb = fc.oneof(
    fc.record({ k: fc.constant('input' as const), step: stepArb }),
    fc.record({ k: fc.constant('complete' as const), pick: fc.nat() }),
  );

  it('keeps persist → send → reply, drops a failed step\'s actions, and never interleaves steps', () => {
    fc.assert(fc.property(fc.array(actionArb, { maxLength: 40 }), (actions) => {
      const log: string[] = [];
      const plans = new Map<string, { persist: boolean[]; send: number; reply: number }>();
      let n = 0;
      const core: PureCore<In, string, string, string> = {
        step: (input) => {
          log.push(`step ${input}`);
          const plan = plans.get(input);
          if (!plan) return { persist: [], send: [], reply: [] };
          return {
            persist: plan.persist.map((fail, i) => `${input}.p${i}${fail ? '!' : ''}`),
            send: Array.from({ length: plan.send }, (_, i) => `${input}.s${i}`),
            reply: Array.from({ length: plan.reply }, (_, i) => `${input}.r${i}`),
          };
        },
        nextDeadline: () => null,
        checkInvariants: () => undefined,
      };
      const inFlight: Array<{ p: string; done: (e: string | null) => void }> = [];
      const time = new ManualTime();
      const driver = new SerialDriver<In, string, string, string>(core, {
        clock: time, timers: time,
        persist: (p, done) => { log.push(`persist ${p}`); inFlight.push({ p, done }); },
        send: (s) => void log.push(`send ${s}`),
        reply: (r) => void log.push(`reply ${r}`),
        persistFailed: (p) => `failed:${p}`,
        persisted: (p) => `ok:${p}`,
        tick: () => 'tick',
      });
      for (const a of actions) {
        if (a.k === 'input') {
          const name = `i${n++}`;
          plans.set(name, a.step);
          driver.input(name);
        } else if (inFlight.length > 0) {
          const [x] = inFlight.splice(a.pick % inFlight.length, 1);
          log.push(`done ${x!.p}`);
          x!.done(x!.p.endsWith('!') ? 'EIO' : null);
        }
      }
      // The model reads the log.
      let current: string | null = null;
      let pendingPersists = new Set<string>();
      let failed = false;
      for (const line of log) {
        const [what, arg] = line.split(' ') as [string, string];
        if (what === 'step') {
          expect(pendingPersists.size, `step ${arg} while ${current} persists`).toBe(0);
          current = arg;
          pendingPersists = new Set();
          failed = false;
        } else if (what === 'persist') {
          expect(arg.startsWith(`${current}.`)).toBe(true);
          pendingPersists.add(arg);
        } else if (what === 'done') {
          pendingPersists.delete(arg);
          if (arg.endsWith('!')) failed = true;
        } else {
          // send / reply: of the current step, only once all its persists are safe and none failed.
          expect(arg.startsWith(`${current}.`), `${line} outside its step`).toBe(true);
          expect(pendingPersists.size, `${line} before its persists`).toBe(0);
          expect(failed, `${line} of a step whose persist failed`).toBe(false);
        }
      }
      // Every step whose persists all succeeded delivered every send and reply, sends first.
      for (const [name, plan] of plans) {
        if (!log.includes(`step ${name}`)) continue;
        const out = log.filter((l) => /^(send|reply) /.test(l) && l.split(' ')[1]!.startsWith(`${name}.`));
        const persisted = plan.persist.every((_, i) => log.includes(`done ${name}.p${i}`));
        if (plan.persist.length > 0 && (!persisted || plan.persist.some((f) => f))) {
          expect(out).toEqual([]);
          continue;
        }
        expect(out).toEqual([
          ...Array.from({ length: plan.send }, (_, i) => `send ${name}.s${i}`),
          ...Array.from({ length: plan.reply }, (_, i) => `reply ${name}.r${i}`),
        ]);
        // The persisted inputs were fed right after, failures never were.
        plan.persist.forEach((_, i) => expect(log).toContain(`step ok:${name}.p${i}`));
      }
      for (const l of log) if (l.startsWith('step failed:')) expect(l.endsWith('!')).toBe(true);
    }), { numRuns: 300, seed: 4242 });
  });
});
