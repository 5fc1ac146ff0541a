import { invalidArgument } from '../common/errors.js';

// Bounds on the 64-bit numbers a peer sends, checked at each tier's gRPC
// edge before any core sees them. A number a core keeps and builds on (the
// highest epoch a job used, the newest incarnation of a member) must not be
// one that a single hostile or broken message can push to the end of its
// range: from there nothing legitimate can follow it (one PREPARE at epoch
// 2^64-1 made every later checkpoint of its job fail, the next epoch being
// 2^64; one RegisterNode at incarnation 2^64-1 evicted a live node for good).

/**
 * The largest epoch any message may name: 2^48, some 280 trillion epochs (at
 * a thousand checkpoints a second, 8,900 years). Stores and cores take epochs
 * up to 2^64-1, so a job whose epochs were pushed to this bound still has
 * 2^64 - 2^48 epochs to go: nothing a peer sends can exhaust them.
 */
export const MAX_WIRE_EPOCH = 1n << 48n;

/** An epoch from the wire (0 may mean none or latest where the field says so): within MAX_WIRE_EPOCH, or INVALID_ARGUMENT naming the field. */
export function checkWireEpoch(field: string, epoch: bigint): bigint {
  if (epoch < 0n || epoch > MAX_WIRE_EPOCH) throw invalidArgument(`${field} ${epoch} is out of range: epochs go up to 2^48 (${MAX_WIRE_EPOCH})`);
  return epoch;
}

/**
 * A member's incarnation is bumped by one at each start of its process
 * (src/common/incarnation.ts), before it registers. A registration that is
 * more than this many incarnations above the one registered is not a
 * restart (a thousand starts that never once registered is a broken host,
 * not a restarting one) and is refused: it cannot evict the live member.
 */
export const MAX_INCARNATION_STEP = 1_000n;

/** No incarnation file reaches 2^32 starts: above it a registration is refused (and stays exact as a JS number). */
export const MAX_MEMBER_INCARNATION = 1n << 32n;

/**
 * Why a member's registration at this incarnation is refused, given the one
 * registered now (null: none), or null when it is plausible.
 */
export function incarnationRefusal(member: string, registered: bigint | null, incarnation: bigint): string | null {
  if (incarnation < 0n || incarnation > MAX_MEMBER_INCARNATION) return `bad incarnation ${incarnation} of ${member}: expected 0 to 2^32`;
  if (registered === null) return null;
  if (incarnation < registered) return `fenced: ${member} incarnation ${incarnation} is older than ${registered}`;
  if (incarnation - registered > MAX_INCARNATION_STEP) {
    return `implausible incarnation ${incarnation} of ${member}: the one registered is ${registered}, and a restart moves it up by 1 (at most ${MAX_INCARNATION_STEP} at once)`;
  }
  return null;
}
