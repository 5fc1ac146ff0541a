import type { SeededRng } from '../runtime/rng.js';
import type { SimProcess, World } from './world.js';

// The simulated network: unary calls with a per-message delay (so calls may
// be reordered, as gRPC allows between calls), partitions that drop what
// crosses them, and peers that are dead (refused at once) or unreachable
// (the caller hears nothing until its deadline). An answer that arrives
// after the caller's deadline is dropped, as a deadline-exceeded call.

export interface NetConfig {
  minDelayMs: number;
  maxDelayMs: number;
  rpcTimeoutMs: number;
}

export class SimNet {
  private readonly cuts = new Set<string>();
  messages = 0;
  dropped = 0;

  constructor(private readonly world: World, private readonly rng: SeededRng, private readonly config: NetConfig) {}

  private key(a: string, b: string): string {
    return a < b ? `${a}|${b}` : `${b}|${a}`;
  }

  cut(a: string, b: string): void { this.cuts.add(this.key(a, b)); }
  heal(a: string, b: string): void { this.cuts.delete(this.key(a, b)); }
  isCut(a: string, b: string): boolean { return this.cuts.has(this.key(a, b)); }
  healAll(): void { this.cuts.clear(); }

  private delay(): number {
    return this.config.minDelayMs + this.rng.int(this.config.maxDelayMs - this.config.minDelayMs + 1);
  }

  /**
   * A unary call from `from` to `to`. `serve` runs in the callee and gets a
   * function to answer with; `onAnswer` or `onFail` (exactly one, at most
   * once) runs in the caller, unless it crashed meanwhile.
   */
  call<A>(from: SimProcess, to: SimProcess | undefined, serve: (answer: (a: A) => void) => void, onAnswer: (a: A) => void, onFail: (reason: string) => void): void {
    this.messages += 1;
    let done = false;
    const finish = (fn: () => void): void => {
      if (done) return;
      done = true;
      fn();
    };
    from.deliver(this.config.rpcTimeoutMs, () => finish(() => onFail('deadline exceeded')));
    const there = this.delay();
    this.world.after(there, () => {
      if (!to || !to.alive) {
        this.dropped += 1;
        return from.deliver(this.delay(), () => finish(() => onFail(`connection refused by ${to?.id ?? 'an unknown peer'}`)));
      }
      if (this.isCut(from.id, to.id)) { this.dropped += 1; return; }
      const sentAtMs = this.world.nowMs - there;
      to.deliver(0, () => {
        // gRPC propagates the deadline: a server (paused, say) that gets to a call after it is not served.
        if (this.world.nowMs - sentAtMs >= this.config.rpcTimeoutMs) { this.dropped += 1; return; }
        serve((a) => {
        this.messages += 1;
        const back = this.delay();
        this.world.after(back, () => {
          if (this.isCut(from.id, to.id)) { this.dropped += 1; return; }
          from.deliver(0, () => finish(() => onAnswer(a)));
        });
        });
      });
    });
  }
}
