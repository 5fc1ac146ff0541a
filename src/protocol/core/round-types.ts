// The domain types of the checkpoint round core (round.ts re-exports them).
// Participants are opaque string ids and a participant's part is `unknown`,
// so the same core runs at the cluster level (participants = node agents) and
// at the grid level (participants = cluster coordinators).

/** Bounds and deadlines of a RoundCoordinator; validated by round-config.ts. */
export interface RoundConfig {
  /** From PREPARE sent to every PREPARED received. */
  prepareTimeoutMs: number;
  /** Only for rounds started with holdAfterPrepare: from prepareDone to `proceed`. */
  holdTimeoutMs: number;
  /** From COMMIT sent to every DURABLE received. */
  commitTimeoutMs: number;
  /** From writeManifest emitted to manifestWritten / manifestFailed. */
  manifestTimeoutMs: number;
  /** The deadline given to the shell for each (best effort) ABORT call. */
  abortTimeoutMs: number;
  maxParticipants: number;
  /** Reasons from the network are cut to this many characters. */
  maxReasonChars: number;
  /** Longest participant id, round id and digest (prepared or durable) accepted. */
  maxIdChars: number;
}

// ---- inputs ----------------------------------------------------------------

export interface StartInput {
  kind: 'start';
  roundId: string;
  jobId: string;
  epoch: bigint;
  /** null only for a full epoch; otherwise below `epoch`. */
  parentEpoch: bigint | null;
  participants: readonly string[];
  full: boolean;
  /**
   * Nested use (a cluster answering a grid round): stop after every PREPARED,
   * reply prepareDone, and send COMMIT only on `proceed`. Default false.
   */
  holdAfterPrepare?: boolean;
}

export interface PreparedInput {
  kind: 'prepared';
  participant: string;
  epoch: bigint;
  pages: number;
  bytes: number;
  /** The digest of the part this participant will write from its snapshot; '' when the level has none. */
  digest: string;
  /**
   * A read-only vote: the snapshot held nothing to write, so the part is durable already and this answer carries
   * what a DURABLE would (the classic 2PC read-only optimization). No COMMIT goes to this participant.
   */
  readOnly?: DurableInfo;
}

export interface PrepareFailedInput { kind: 'prepareFailed'; participant: string; epoch: bigint; reason: string }
export interface DurableInput {
  kind: 'durable';
  participant: string;
  epoch: bigint;
  part: unknown;
  /** The digest of the part as written (its table digest); '' when the level has none. Checked by invariant 10. */
  digest: string;
}
export interface DurableFailedInput { kind: 'durableFailed'; participant: string; epoch: bigint; reason: string }
/** A verdict of the failure detector; carries no epoch. */
export interface ParticipantFailedInput { kind: 'participantFailed'; participant: string; reason: string }
export interface ManifestWrittenInput { kind: 'manifestWritten'; epoch: bigint }
export interface ManifestFailedInput { kind: 'manifestFailed'; epoch: bigint; reason: string }
/** For rounds started with holdAfterPrepare: the level above said COMMIT. */
export interface ProceedInput { kind: 'proceed'; epoch: bigint }
/** An abort asked from outside: the level above said ABORT, job stop, shutdown. */
export interface CancelInput { kind: 'cancel'; epoch: bigint; reason: string }
export interface TickInput { kind: 'tick' }

export type RoundInput =
  | StartInput
  | PreparedInput
  | PrepareFailedInput
  | DurableInput
  | DurableFailedInput
  | ParticipantFailedInput
  | ManifestWrittenInput
  | ManifestFailedInput
  | ProceedInput
  | CancelInput
  | TickInput;

// ---- outputs ---------------------------------------------------------------

export interface ManifestPart {
  participant: string;
  pages: number;
  bytes: number;
  digest: string;
  /** What the participant answered with DURABLE (or with its read-only PREPARED), as is. */
  part: unknown;
}

export interface WriteManifestAction {
  kind: 'writeManifest';
  jobId: string;
  epoch: bigint;
  parentEpoch: bigint | null;
  full: boolean;
  /** In the round's participant order. */
  parts: ManifestPart[];
  deadlineMs: number;
}

export type PersistAction = WriteManifestAction;

export interface PrepareAction {
  kind: 'prepare';
  to: string;
  jobId: string;
  epoch: bigint;
  /** Lets a participant that missed an ABORT see that its last epoch was not committed. */
  parentEpoch: bigint | null;
  full: boolean;
  deadlineMs: number;
}

export interface CommitAction { kind: 'commit'; to: string; jobId: string; epoch: bigint; deadlineMs: number }
export interface AbortAction { kind: 'abort'; to: string; jobId: string; epoch: bigint; deadlineMs: number; reason: string }

export type SendAction = PrepareAction | CommitAction | AbortAction;

export interface PreparedInfo { participant: string; pages: number; bytes: number; digest: string }

/** What a participant answered with DURABLE (or voted read-only with): its part as is, and the part's digest. */
export interface DurableInfo { part: unknown; digest: string }

export type RoundPhase = 'preparing' | 'holding' | 'committing' | 'writingManifest';
export type AbortPhase = RoundPhase;

export interface CommittedOutcome {
  kind: 'committed';
  roundId: string;
  jobId: string;
  epoch: bigint;
  parentEpoch: bigint | null;
  full: boolean;
  participants: number;
  pages: number;
  bytes: number;
  /** holdMs is 0 for a round that did not hold. */
  timings: { prepareMs: number; holdMs: number; commitMs: number; manifestMs: number; totalMs: number };
}

export interface AbortedOutcome {
  kind: 'aborted';
  roundId: string;
  jobId: string;
  epoch: bigint;
  /** The phase the round was in when it aborted. */
  phase: AbortPhase;
  reason: string;
  /** Who caused it (failed, or did not answer in time); empty for a cancel or a manifest failure. */
  culprits: string[];
  elapsedMs: number;
}

export type RoundOutcome = CommittedOutcome | AbortedOutcome;

/** Not an outcome: a held round reports its prepare phase done (the round goes on). */
export interface PrepareDoneReply {
  kind: 'prepareDone';
  roundId: string;
  jobId: string;
  epoch: bigint;
  pages: number;
  bytes: number;
  /** In the round's participant order. */
  prepared: PreparedInfo[];
  prepareMs: number;
}

export type RoundReply = RoundOutcome | PrepareDoneReply;

/**
 * What a step asks of its shell, performed in this order: persist (and wait
 * for it to be safe), then send, then reply.
 */
export interface RoundStep {
  persist: PersistAction[];
  send: SendAction[];
  reply: RoundReply | null;
}

export interface IgnoredCounts {
  /** For another epoch, or while no round runs. */
  stale: number;
  /** An answer already recorded. */
  duplicate: number;
  /** Not a member of the round, an answer that its phase does not expect, bad values. */
  unexpected: number;
  /** A report that changes nothing: a failure of a member whose part is durable, a cancel during the manifest write. */
  irrelevant: number;
}

export interface RoundStatus {
  jobId: string;
  phase: RoundPhase | 'idle';
  roundId: string | null;
  epoch: bigint | null;
  /** Highest epoch ever started here (0n before the first). */
  highestEpoch: bigint;
  /** Participants whose answer the current phase still waits for (none while holding or writing the manifest). */
  waitingFor: string[];
  deadlineMs: number | null;
  roundsStarted: number;
  roundsCommitted: number;
  roundsAborted: number;
  ignored: IgnoredCounts;
  lastOutcome: RoundOutcome | null;
}
