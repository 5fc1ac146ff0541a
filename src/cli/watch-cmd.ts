import type { Command } from 'commander';
import { status } from '@grpc/grpc-js';
import { checkHostPort } from '../common/host-port.js';
import { checkName } from '../common/names.js';
import { GrpcCallError } from '../common/grpc-call.js';
import { statusName } from '../common/grpc-status.js';
import type { WatchEvent } from '../gen/gridckpt/v1/common.js';
import { GridClient } from '../wire/grid-client.js';
import { ClusterClient } from '../wire/cluster-client.js';
import { AgentClient } from '../wire/agent-client.js';
import type { WatchStream } from '../wire/watch-client.js';
import { realRuntime } from '../wire/real-clients.js';
import { UsageError, jsonLine, line, parseIntFlag } from './output.js';
import { clientSecurity } from './tls-flags.js';
import { FIRST_PAUSE_MS, MAX_PAUSE_MS, REPLAY_ON_REOPEN, WatchResume, nextPauseMs } from './watch-resume.js';

// `gridckpt watch`: a service's events as they happen, one a line, until
// Ctrl-C (or SIGTERM). A stream that is lost (the service restarted, the
// connection dropped, this watcher fell behind) is opened again after a
// pause (100 ms doubling to 5 s), asking for what the service kept so that
// nothing in between is lost and nothing printed is printed again
// (watch-resume.ts). Stderr says when the stream is lost and when it is back;
// stdout holds events only. --once ends with the stream instead, as before.

interface WatchFlags {
  grid?: string;
  cluster?: string;
  agent?: string;
  job?: string;
  json?: boolean;
  once?: boolean;
  replay: string;
}

const TIERS = ['grid', 'cluster', 'agent'] as const;

/** grpc-js reconnects its channel on this backoff too, so a back service is seen within our pause. */
const CHANNEL_OPTIONS = { 'grpc.initial_reconnect_backoff_ms': FIRST_PAUSE_MS, 'grpc.max_reconnect_backoff_ms': MAX_PAUSE_MS };

/** Errors that another attempt cannot cure: the watch ends with them. */
const FINAL_CODES: ReadonlySet<number> = new Set([status.INVALID_ARGUMENT, status.UNIMPLEMENTED, status.PERMISSION_DENIED, status.UNAUTHENTICATED]);

export function addWatchCommand(program: Command): void {
  program.command('watch').description('print the events of a grid, a cluster or a node agent as they happen (rounds, recoveries, jobs, members), one a line; a lost stream is opened again')
    .option('--grid <host:port>', 'a grid coordinator\'s address')
    .option('--cluster <host:port>', 'a cluster coordinator\'s address')
    .option('--agent <host:port>', 'a node agent\'s address')
    .option('--job <id>', 'only this job\'s events')
    .option('--replay <n>', 'first the last n events the service kept', '0')
    .option('--json', 'one JSON object a line')
    .option('--once', 'end when the stream ends or fails, instead of opening it again')
    .action((o: WatchFlags) => watch(o));
}

interface Watched {
  what: string;
  open(replayRecent: number): WatchStream;
  close(): void;
}

async function watch(o: WatchFlags): Promise<void> {
  const chosen = TIERS.filter((t) => o[t] !== undefined);
  if (chosen.length !== 1) throw new UsageError(`watch needs exactly one of --grid, --cluster or --agent (got ${chosen.length === 0 ? 'none' : chosen.map((t) => `--${t}`).join(', ')})`);
  const tier = chosen[0]!;
  const address = checkHostPort(`${tier} address`, o[tier]!);
  const jobId = o.job === undefined ? '' : checkName('job id', o.job);
  const replayRecent = parseIntFlag('replay', o.replay, 0, 1_000_000);
  const security = clientSecurity();
  const client = tier === 'grid' ? new GridClient(address, undefined, CHANNEL_OPTIONS, security)
    : tier === 'cluster' ? new ClusterClient(address, undefined, CHANNEL_OPTIONS, security) : new AgentClient(address, undefined, CHANNEL_OPTIONS, security);
  const what = `the ${tier === 'agent' ? 'node agent' : `${tier} coordinator`} at ${address}`;
  const watched: Watched = { what, open: (n) => client.watch({ jobId, replayRecent: n }), close: () => client.close() };
  const stop = new StopSignal();
  const onSignal = () => stop.stop();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await follow(watched, { replayRecent, json: o.json === true, once: o.once === true, jobId }, stop);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    watched.close();
  }
}

/** Ctrl-C: cancels the stream being read or opened, and ends a pause. */
class StopSignal {
  stopped = false;
  stream: WatchStream | null = null;
  private wake: () => void = () => undefined;
  readonly done = new Promise<void>((resolve) => (this.wake = resolve));

  stop(): void {
    this.stopped = true;
    this.stream?.cancel();
    this.wake();
  }

  /** The pause between attempts, cut short by stop() (its timer cleared: it must not hold the process). */
  async pause(ms: number): Promise<void> {
    const { timers } = realRuntime();
    let timer: unknown = null;
    try {
      await Promise.race([new Promise<void>((resolve) => (timer = timers.setTimer(resolve, ms))), this.done]);
    } finally {
      if (timer !== null) timers.clearTimer(timer);
    }
  }
}

interface FollowOptions {
  replayRecent: number;
  json: boolean;
  once: boolean;
  jobId: string;
}

async function follow(w: Watched, o: FollowOptions, stop: StopSignal): Promise<void> {
  const resume = new WatchResume(o.jobId !== '');
  // The first stream must open: a wrong or dead address is said at once (exit 1), not waited on.
  stop.stream = w.open(o.replayRecent);
  try {
    await stop.stream.subscribed;
  } catch (err) {
    if (stop.stopped) return;
    throw cannotWatch(w.what, err);
  }
  note(`watching ${w.what}${o.jobId ? ` (job ${o.jobId})` : ''}; Ctrl-C stops`);
  for (;;) {
    const lost = await print(stop.stream, resume, o.json);
    if (stop.stopped) return;
    if (o.once) {
      if (lost !== null) throw cannotWatch(w.what, lost);
      note(`${w.what} ended the stream`);
      return;
    }
    if (lost !== null && FINAL_CODES.has((lost as GrpcCallError).code)) throw cannotWatch(w.what, lost);
    note(`lost the stream from ${w.what} (${lost === null ? 'the service ended it' : describeError(lost)}); opening it again`);
    const back = await reopen(w, stop);
    if (back === null) return;
    stop.stream = back;
    note(`watching ${w.what} again`);
  }
}

/** Prints a stream's events until it ends (null) or fails (the error). */
async function print(stream: WatchStream, resume: WatchResume, json: boolean): Promise<unknown> {
  try {
    for await (const e of stream.events()) {
      const v = resume.take(e);
      if (v.kind === 'skip') continue;
      if (v.note !== null) note(v.note);
      line(json ? jsonLine(e) : eventLine(e));
    }
    return null;
  } catch (err) {
    return err;
  }
}

/** Opens the stream again, pausing between attempts; null when stopped first. */
async function reopen(w: Watched, stop: StopSignal): Promise<WatchStream | null> {
  for (let pauseMs = FIRST_PAUSE_MS; ; pauseMs = nextPauseMs(pauseMs)) {
    await stop.pause(pauseMs);
    if (stop.stopped) return null;
    const stream = w.open(REPLAY_ON_REOPEN);
    stop.stream = stream;
    try {
      await stream.subscribed;
      return stream;
    } catch (err) {
      stream.cancel();
      if (stop.stopped) return null;
      if (FINAL_CODES.has((err as GrpcCallError).code)) throw cannotWatch(w.what, err);
    }
  }
}

function cannotWatch(what: string, err: unknown): GrpcCallError {
  const e = err as Partial<GrpcCallError>;
  const hint = e.code === status.RESOURCE_EXHAUSTED ? ' (this watcher fell behind; watch again)' : '';
  return new GrpcCallError(e.code ?? status.UNKNOWN, `cannot watch ${what}: ${e.details ?? String(err)}${hint}`, 'watch');
}

function describeError(err: unknown): string {
  const e = err as Partial<GrpcCallError>;
  return e.code === undefined ? String(err) : `${statusName(e.code)}: ${e.details ?? ''}`;
}

function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** 10:31:02.345 #12 round bank 3 started→committed: epoch 3 committed (full) … */
export function eventLine(e: WatchEvent): string {
  const at = new Date(Number(e.atUnixMs)).toISOString().slice(11, 23);
  const change = e.from || e.to ? ` ${e.from || '·'}→${e.to || '·'}` : '';
  return `${at} #${e.seq} ${e.kind.padEnd(8)} ${e.jobId || '-'} ${e.subject}${change}: ${e.detail}`;
}
