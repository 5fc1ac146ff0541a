import type { Logger } from '../common/log.js';
import type { TimePorts } from '../runtime/runtime.js';
import {
  RoundCoordinator, type RoundConfig, type RoundInput, type RoundOutcome, type RoundReply, type SendAction, type StartInput,
  type WriteManifestAction,
} from './core/round.js';

// The serial driver of one job's RoundCoordinator, at either level: it
// performs each step's actions in order (persist, then send, then reply),
// turns every answer or failure of the participants back into an input, and
// arms one timer at the core's next deadline. What a send or a persist does
// is the level's business (RoundPorts): agents and the cluster store below,
// clusters and the grid catalog above.

export interface RoundPorts {
  prepare(to: string, epoch: bigint, parentEpoch: bigint | null, full: boolean): Promise<{ pages: number; bytes: number }>;
  commit(to: string, epoch: bigint): Promise<unknown>;
  abort(to: string, epoch: bigint, reason: string): Promise<void>;
  persist(action: WriteManifestAction): Promise<void>;
  onReply(reply: RoundReply): void;
  /** A round the core accepted has started (for Watch readers). */
  onStart?(input: StartInput): void;
}

export class RoundDriver {
  readonly core: RoundCoordinator;
  private timer: unknown = null;
  private readonly waiters = new Map<bigint, (o: RoundOutcome) => void>();
  private current: Promise<RoundOutcome> | null = null;

  constructor(jobId: string, config: RoundConfig, private readonly ports: RoundPorts, private readonly time: TimePorts, private readonly log: Logger) {
    this.core = new RoundCoordinator(jobId, config);
  }

  /** Starts a round; resolves with its outcome. A refused start throws, and nothing waits. */
  start(input: StartInput): Promise<RoundOutcome> {
    const done = new Promise<RoundOutcome>((resolve) => this.waiters.set(input.epoch, resolve));
    try {
      this.step(input);
    } catch (err) {
      this.waiters.delete(input.epoch);
      throw err;
    }
    this.current = done;
    this.ports.onStart?.(input);
    return done;
  }

  /** Resolves once no round is running. */
  async whenIdle(): Promise<void> {
    while (this.current && this.core.status().phase !== 'idle') await this.current;
  }

  step(input: RoundInput): void {
    const out = this.core.step(input, Math.floor(this.time.clock.nowMs()));
    for (const p of out.persist) void this.persist(p);
    for (const s of out.send) void this.send(s);
    if (out.reply) {
      this.ports.onReply(out.reply);
      if (out.reply.kind !== 'prepareDone') {
        this.waiters.get(out.reply.epoch)?.(out.reply);
        this.waiters.delete(out.reply.epoch);
      }
    }
    this.arm();
  }

  stop(): void {
    this.disarm();
    const s = this.core.status();
    if (s.phase !== 'idle' && s.epoch !== null) this.step({ kind: 'cancel', epoch: s.epoch, reason: 'job stopped' });
    this.disarm();
  }

  private disarm(): void {
    if (this.timer !== null) this.time.timers.clearTimer(this.timer);
    this.timer = null;
  }

  private arm(): void {
    this.disarm();
    const at = this.core.nextDeadlineMs();
    if (at === null) return;
    this.timer = this.time.timers.setTimer(() => this.step({ kind: 'tick' }), Math.max(0, at - this.time.clock.nowMs()) + 1);
  }

  private async send(s: SendAction): Promise<void> {
    const participant = s.to;
    const epoch = s.epoch;
    try {
      switch (s.kind) {
        case 'prepare': {
          const r = await this.ports.prepare(participant, epoch, s.parentEpoch, s.full);
          this.step({ kind: 'prepared', participant, epoch, pages: r.pages, bytes: r.bytes, digest: '' });
          return;
        }
        case 'commit': {
          const part = await this.ports.commit(participant, epoch);
          this.step({ kind: 'durable', participant, epoch, part });
          return;
        }
        case 'abort':
          await this.ports.abort(participant, epoch, s.reason);
          return;
        default: {
          const never: never = s;
          throw new Error(`unknown send ${JSON.stringify(never)}`);
        }
      }
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (s.kind === 'prepare') this.step({ kind: 'prepareFailed', participant, epoch, reason });
      else if (s.kind === 'commit') this.step({ kind: 'durableFailed', participant, epoch, reason });
      else this.log.debug({ participant, epoch: String(epoch), reason }, 'abort not delivered');
    }
  }

  private async persist(p: WriteManifestAction): Promise<void> {
    try {
      await this.ports.persist(p);
      this.step({ kind: 'manifestWritten', epoch: p.epoch });
    } catch (err) {
      this.step({ kind: 'manifestFailed', epoch: p.epoch, reason: err instanceof Error ? err.message : String(err) });
    }
  }
}

export type { RoundOutcome };
