import type { Logger } from '../common/log.js';
import type { TimePorts } from '../runtime/runtime.js';
import { SerialDriver } from '../runtime/serial-driver.js';
import { failedPrecondition } from './core/round-checks.js';
import {
  RoundCoordinator, type RoundConfig, type RoundInput, type RoundOutcome, type RoundReply, type SendAction, type StartInput,
  type WriteManifestAction,
} from './core/round.js';

// The shell of one job's RoundCoordinator, at either level, on the one
// SerialDriver (src/runtime/serial-driver.ts): each step's manifest is
// persisted and safe before anything else of that step goes out, then the
// sends, then the reply; every answer or failure of the participants comes
// back as an input, one at a time; one timer at the core's next deadline.
// What a send or a persist does is the level's business (RoundPorts): agents
// and the cluster store below, clusters and the grid catalog above.

/** A participant's PREPARED: `digest` is its part's digest to come, '' when the level has none (round.ts invariant 10). */
export interface PreparedAnswer { pages: number; bytes: number; digest: string }
/** A participant's DURABLE: its part as the manifest takes it, and that part's digest ('' when none). */
export interface DurableAnswer { part: unknown; digest: string }

export interface RoundPorts {
  prepare(to: string, epoch: bigint, parentEpoch: bigint | null, full: boolean): Promise<PreparedAnswer>;
  commit(to: string, epoch: bigint): Promise<DurableAnswer>;
  abort(to: string, epoch: bigint, reason: string): Promise<void>;
  persist(action: WriteManifestAction): Promise<void>;
  onReply(reply: RoundReply): void;
  /** A round the core accepted has started (for Watch readers). */
  onStart?(input: StartInput): void;
}

export class RoundDriver {
  readonly core: RoundCoordinator;
  private readonly driver: SerialDriver<RoundInput, WriteManifestAction, SendAction, RoundReply>;
  private readonly waiters = new Map<bigint, (o: RoundOutcome) => void>();
  private current: Promise<RoundOutcome> | null = null;

  constructor(jobId: string, config: RoundConfig, private readonly ports: RoundPorts, time: TimePorts, private readonly log: Logger) {
    const core = new RoundCoordinator(jobId, config);
    this.core = core;
    this.driver = new SerialDriver({
      step: (input, nowMs) => {
        const out = core.step(input, nowMs);
        return { persist: out.persist, send: out.send, reply: out.reply ? [out.reply] : [] };
      },
      nextDeadline: () => core.nextDeadlineMs(),
      checkInvariants: () => core.checkInvariants(),
    }, {
      clock: time.clock,
      timers: time.timers,
      persist: (p, done) => {
        this.ports.persist(p).then(() => done(null), (err: unknown) => done(err instanceof Error ? err.message : String(err)));
      },
      persisted: (p): RoundInput => ({ kind: 'manifestWritten', epoch: p.epoch }),
      persistFailed: (p, reason): RoundInput => ({ kind: 'manifestFailed', epoch: p.epoch, reason }),
      send: (a) => void this.send(a),
      reply: (r) => this.onReply(r),
      tick: (): RoundInput => ({ kind: 'tick' }),
    });
  }

  /** Starts a round; resolves with its outcome. A refused start throws, and nothing waits. */
  start(input: StartInput): Promise<RoundOutcome> {
    // The core refuses a start while a round runs; while its manifest is being written the
    // driver holds inputs, so say so here rather than refuse later where no one hears it.
    if (this.driver.isBusy()) throw failedPrecondition(`job ${this.core.jobId} is writing the manifest of round ${this.core.status().roundId}`);
    const done = new Promise<RoundOutcome>((resolve) => this.waiters.set(input.epoch, resolve));
    try {
      this.driver.input(input);
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
    this.driver.input(input);
  }

  /** Cancels the round, if one runs (its outcome reaches its waiter). */
  stop(): void {
    const s = this.core.status();
    if (s.phase !== 'idle' && s.epoch !== null) this.step({ kind: 'cancel', epoch: s.epoch, reason: 'job stopped' });
  }

  private onReply(reply: RoundReply): void {
    this.ports.onReply(reply);
    if (reply.kind === 'prepareDone') return;
    this.waiters.get(reply.epoch)?.(reply);
    this.waiters.delete(reply.epoch);
  }

  private async send(s: SendAction): Promise<void> {
    const participant = s.to;
    const epoch = s.epoch;
    try {
      switch (s.kind) {
        case 'prepare': {
          const r = await this.ports.prepare(participant, epoch, s.parentEpoch, s.full);
          this.step({ kind: 'prepared', participant, epoch, pages: r.pages, bytes: r.bytes, digest: r.digest });
          return;
        }
        case 'commit': {
          const { part, digest } = await this.ports.commit(participant, epoch);
          this.step({ kind: 'durable', participant, epoch, part, digest });
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
}

export type { RoundOutcome };
