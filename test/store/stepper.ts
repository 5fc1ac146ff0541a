// Runs an async process one segment at a time, between the pauses it takes
// through an injected hook, so a test can interleave two processes that
// touch the same files in any chosen order, deterministically.

type Pause = (step: string) => Promise<void>;

export class Stepper<T> {
  private release: (() => void) | null = null;
  private signal: (step: string | null) => void = () => undefined;
  private reached: Promise<string | null>;
  private finished = false;
  private readonly outcome: Promise<T>;

  constructor(run: (pause: Pause) => Promise<T>) {
    this.reached = this.arm();
    this.outcome = (async () => {
      await this.pause('start'); // nothing runs before the first advance()
      try {
        return await run(this.pause);
      } finally {
        this.finished = true;
        this.signal(null);
      }
    })();
    this.outcome.catch(() => undefined); // reported by result()
  }

  /** Resolves once the process stands at its start. */
  async started(): Promise<void> {
    await this.reached;
  }

  /** Runs the process to its next pause: the step it stopped at, or null when it is (or was already) done. */
  async advance(): Promise<string | null> {
    if (this.finished) return null;
    const go = this.release;
    if (!go) throw new Error('Stepper: advance() before started() resolved');
    this.release = null;
    this.reached = this.arm();
    go();
    return this.reached;
  }

  /** Runs the process to its end and gives what it returned (or throws what it threw). */
  async result(): Promise<T> {
    while (!this.finished) await this.advance();
    return this.outcome;
  }

  private arm(): Promise<string | null> {
    return new Promise((resolve) => (this.signal = resolve));
  }

  private readonly pause: Pause = (step) => new Promise<void>((resolve) => {
    this.release = resolve;
    this.signal(step);
  });
}

/** Every order of `a` moves of 'a' and `b` moves of 'b'. */
export function interleavings(a: number, b: number): Array<Array<'a' | 'b'>> {
  if (a === 0) return [Array<'b'>(b).fill('b')];
  if (b === 0) return [Array<'a'>(a).fill('a')];
  return [
    ...interleavings(a - 1, b).map((rest) => ['a' as const, ...rest]),
    ...interleavings(a, b - 1).map((rest) => ['b' as const, ...rest]),
  ];
}
