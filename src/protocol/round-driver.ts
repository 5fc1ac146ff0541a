import { performance } from 'node:perf_hooks';
import type { Logger } from '../common/log.js';
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
  private timer: NodeJS.Timeout | null = null;
  private readonly waiters = new Map<bigint, (o: RoundOutcome) => void>();
  private current: Promise<RoundOutcome> | null = null;

  constructor(jobId: string, config: RoundConfig, private readonly ports: RoundPorts, private readonly log: Logger) {
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
    const out = this.core.step(input, Math.floor(performance.now()));
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
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const s = this.core.status();
    if (s.phase !== 'idle' && s.epoch !== null) this.step({ kind: 'cancel', epoch: s.epoch, reason: 'job stopped' });
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const at = this.core.nextDeadlineMs();
    if (at === null) return;
    this.timer = setTimeout(() => this.step({ kind: 'tick' }), Math.max(0, at - performance.now()) + 1);
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
