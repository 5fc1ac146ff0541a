import type { OwnershipStep, PeerMsg, UnitReply } from '../../node/core/ownership/ownership-node.js';
import { Violation } from '../checkers.js';
import { World } from '../world.js';
import { BANK, drawOp, openingPages, applyCredit, type Balances, type Credit } from './bank.js';
import { ContainerCheckers } from './checkers.js';
import { SimContainerCoordinator } from './coordinator.js';
import { drawContainerFaults, type ContainerFault, type ContainerFaultShape } from './faults.js';
import { SimOwnNode } from './node.js';

// `npm run sim -- --scenario containers`: the page ownership core of issue 9
// on 4 agents of one cluster, with a bank job whose accounts sit on 12 shared
// pages and whose units (2 per node) read pages and transfer between random
// accounts (atomic batches over one or two pages), background evictions
// (memory pressure), checkpoint rounds every 50 ms, and the faults of
// faults.ts; the checkers of checkers.ts after every event. Same seed, same
// trace, byte for byte.

export const CONTAINERS = {
  untilMs: 900,
  opsUntilMs: 800,
  roundEveryMs: 50,
  evictEveryMs: { min: 4, max: 12 },
  /** A dead node is noticed this long after it died (the detector's verdict). */
  detectMs: 15,
  unitStuckMs: 600,
  faultWindowMs: { fromMs: 60, toMs: 700 },
};

export interface ContainerSimOptions {
  seed: number;
  mutants?: ReadonlySet<string>;
  faults?: ContainerFaultShape;
  trace?: boolean;
}

export interface ContainerSimResult {
  seed: number;
  ok: boolean;
  violation: string | null;
  events: number;
  simMs: number;
  faults: ContainerFault[];
  faultCounts: Record<string, number>;
  trace: string[];
}

interface Pending { node: string; unit: number | null; ops: Array<{ page: number; op: Credit }> | null }

export function runContainersSeed(o: ContainerSimOptions): ContainerSimResult {
  const world = new World(o.seed);
  const opsRng = world.rng.fork();
  const netRng = world.rng.fork();
  const faultRng = world.rng.fork();
  const evictRng = world.rng.fork();
  const mutants = o.mutants ?? new Set<string>();
  const trace: string[] = [];
  const log = (line: string): void => { if (o.trace) trace.push(`${String(world.nowMs).padStart(6)} ${line}`); };
  const counts: Record<string, number> = {};
  const count = (k: string, n = 1): void => { counts[k] = (counts[k] ?? 0) + n; };
  const pending = new Map<number, Pending>();
  let reqIds = 0;
  // Fault state.
  let loseTransfers = 0;
  let holdNextTransfer = false;
  let crashNextSender = 0;
  let evictAtCut = 0;
  const slowStreams = new Map<string, number>();

  const nodes = new Map<string, SimOwnNode>();
  const ids = Array.from({ length: BANK.nodes }, (_, i) => `n${i + 1}`);
  const alive = (): string[] => ids.filter((id) => nodes.get(id)!.proc.alive);
  // Each node's core is read through the node: a restart replaces it.
  const checkers = new ContainerCheckers(ids.map((id) => ({ id, alive: () => nodes.get(id)!.proc.alive, core: () => nodes.get(id)!.core })), applyCredit);
  const coordinator = new SimContainerCoordinator({
    nowMs: () => world.nowMs,
    alive,
    tell: (node, input) => {
      const n = nodes.get(node)!;
      if (input.kind === 'cut' && evictAtCut > 0) evictOne(n, evictRng.int(1 << 20));
      n.proc.deliver(1 + netRng.int(4), () => n.input(input));
    },
    onSaved: (node, pages) => checkers.onSaved(node, pages),
    onCommit: (round, saved) => checkers.onCommit(round, saved),
    onRestore: (pages, rollback) => {
      if (!rollback && !checkers.recovering) {
        const model = checkers.modelImages();
        const differs = pages.find((p) => p.version !== model[p.page]!.version);
        if (differs) throw new Violation('lost write', `a join restored page ${differs.page} at version ${differs.version}, the acknowledged writes made it ${model[differs.page]!.version}`);
      }
      checkers.recovering = true;
      checkers.restoreModel(pages);
    },
    onRecovered: () => { checkers.recovering = false; },
    describe: (node) => JSON.stringify(nodes.get(node)!.core.inFlight()),
    log,
  }, { rangePages: BANK.rangePages, pageCount: BANK.pageCount });

  for (const id of ids) nodes.set(id, new SimOwnNode(id, world, mutants, perform));

  function perform(n: SimOwnNode, out: OwnershipStep<Balances>): void {
    for (const s of out.send) send(n, s.to, s.msg);
    for (const r of out.reply) onReply(n, r);
    for (const r of out.report) world.after(1 + netRng.int(4), () => coordinator.onReport(n.id, r));
  }

  function send(from: SimOwnNode, to: string, msg: PeerMsg<Balances>): void {
    if (!from.proc.alive) return;
    const b = msg.body;
    if (o.trace) log(`${from.id}>${to} ${b.kind} p${b.page}${'grant' in b ? ` g${b.grant}` : ''}${'version' in b ? ` v${b.version}` : ''} e${msg.epoch}`);
    let delay = 1 + netRng.int(4) + (world.nowMs < (slowStreams.get(`${from.id}>${to}`) ?? 0) ? 10 + netRng.int(31) : 0);
    if ((b.kind === 'transfer' || b.kind === 'transferAck') && loseTransfers > 0) {
      loseTransfers -= 1;
      log(`LOST ${from.id}>${to} ${b.kind} p${b.page}`);
      return;
    }
    if (b.kind === 'transfer') {
      if (holdNextTransfer) {
        holdNextTransfer = false;
        delay += 25;
        log(`HELD ${from.id}>${to} transfer p${b.page} across a freeze`);
        coordinator.startRound();
      }
      if (crashNextSender > 0) {
        crashNextSender -= 1;
        world.after(0, () => crash(from, 100 + faultRng.int(200)));
      }
    }
    const dest = nodes.get(to)!;
    dest.proc.deliver(delay, () => dest.input({ kind: 'message', msg }));
  }

  function onReply(n: SimOwnNode, r: UnitReply<Balances>): void {
    const p = pending.get(r.reqId);
    pending.delete(r.reqId);
    if (!p) return;
    if (r.kind === 'refused') throw new Violation('core invariant', `${n.id} refused a unit op: ${r.reason}`);
    if (!judging() || n.core.epoch() !== coordinator.epoch) return settleUnit(n, p);
    checkers.onReply(n.id, r, p.ops);
    settleUnit(n, p);
  }

  /** The checkers judge the job unless it is being restored or a member is dead (what it does then is rolled back). */
  function judging(): boolean {
    return !checkers.recovering && coordinator.members.every((m) => nodes.get(m)!.proc.alive);
  }

  function settleUnit(n: SimOwnNode, p: Pending): void {
    if (p.unit === null) return;
    const u = n.units[p.unit]!;
    u.busy = null;
    n.proc.deliver(1 + opsRng.int(4), () => unitOp(n, p.unit!));
  }

  function unitOp(n: SimOwnNode, unit: number): void {
    const u = n.units[unit]!;
    if (u.busy !== null || world.nowMs >= CONTAINERS.opsUntilMs) return;
    if (n.frozen || n.core.epoch() === null) return n.proc.deliver(3, () => unitOp(n, unit));
    const op = drawOp(opsRng);
    const reqId = ++reqIds;
    u.busy = reqId;
    u.sinceMs = world.nowMs;
    pending.set(reqId, { node: n.id, unit, ops: op.kind === 'write' ? op.ops : null });
    n.input(op.kind === 'read' ? { kind: 'read', reqId, page: op.page } : { kind: 'write', reqId, ops: op.ops });
  }

  function startNode(n: SimOwnNode): void {
    n.start();
    for (let u = 0; u < n.units.length; u++) n.proc.deliver(1 + opsRng.int(4), () => unitOp(n, u));
  }

  function crash(n: SimOwnNode, downMs: number): void {
    if (!n.proc.alive || alive().length <= 2) return;
    log(`CRASH ${n.id}`);
    count('crash');
    n.proc.crash();
    world.after(CONTAINERS.detectMs, () => coordinator.onCrash(n.id));
    world.after(downMs, () => {
      log(`RESTART ${n.id}`);
      startNode(n);
      coordinator.onRestart(n.id);
    });
  }

  function ownerOf(page: number): SimOwnNode | undefined {
    return alive().map((id) => nodes.get(id)!).find((n) => n.core.view(page).state.startsWith('owner'));
  }

  /** Memory pressure: a node hands one of its owned pages to another member. */
  function evictOne(n: SimOwnNode, pick: number): void {
    const members = coordinator.members.filter((m) => m !== n.id);
    const owned = Array.from({ length: BANK.pageCount }, (_, p) => p).filter((p) => n.core.view(p).state.startsWith('owner'));
    if (!n.proc.alive || owned.length === 0 || members.length === 0) return;
    n.input({ kind: 'evict', page: owned[pick % owned.length]!, to: members[pick % members.length]! });
  }

  function evictions(): void {
    if (world.nowMs >= CONTAINERS.opsUntilMs) return;
    const live = alive();
    if (live.length > 0) evictOne(nodes.get(live[evictRng.int(live.length)]!)!, evictRng.int(1 << 20));
    world.after(CONTAINERS.evictEveryMs.min + evictRng.int(CONTAINERS.evictEveryMs.max - CONTAINERS.evictEveryMs.min + 1), evictions);
  }

  function rounds(): void {
    coordinator.startRound();
    world.after(CONTAINERS.roundEveryMs, rounds);
  }

  function inject(f: ContainerFault): void {
    count(f.kind);
    log(`FAULT ${f.kind} ${f.durationMs}ms x${f.count}`);
    const live = alive();
    switch (f.kind) {
      case 'delay-stream': {
        const a = live[f.pick % live.length]!;
        const b = live[(f.pick + 1) % live.length]!;
        slowStreams.set(`${a}>${b}`, world.nowMs + f.durationMs);
        slowStreams.set(`${b}>${a}`, world.nowMs + f.durationMs);
        return;
      }
      case 'lose-transfer': loseTransfers += f.count; return;
      case 'transfer-at-cut': holdNextTransfer = true; return;
      case 'evict-at-cut': evictAtCut += 1; return;
      case 'owner-crash-mid-transfer': crashNextSender += 1; return;
      case 'evict-race': {
        const page = f.pick % BANK.pageCount;
        const owner = ownerOf(page);
        const others = coordinator.members.filter((m) => m !== owner?.id && nodes.get(m)!.proc.alive && nodes.get(m)!.core.epoch() === coordinator.epoch);
        if (!owner || others.length < 2) return;
        const to = others[f.pick % others.length]!;
        const grabber = nodes.get(others[(f.pick + 1) % others.length]!)!;
        const reqId = ++reqIds;
        const ops = [{ page, op: { slot: 0, delta: -1 } }, { page, op: { slot: 1, delta: 1 } }];
        pending.set(reqId, { node: grabber.id, unit: null, ops });
        owner.input({ kind: 'evict', page, to });
        grabber.input({ kind: 'write', reqId, ops });
        return;
      }
      case 'manager-crash': {
        const busy = (id: string): number => {
          const c = nodes.get(id)!.core;
          let k = 0;
          for (let p = 0; p < BANK.pageCount; p++) if (c.managerEntry(p)?.busy) k += 1;
          return k;
        };
        const members = coordinator.members.filter((m) => nodes.get(m)!.proc.alive);
        if (members.length === 0) return;
        const victim = [...members].sort((x, y) => busy(y) - busy(x) || (f.pick % 2 === 0 ? x.localeCompare(y) : y.localeCompare(x)))[0]!;
        crash(nodes.get(victim)!, f.durationMs);
        return;
      }
    }
  }

  for (const id of ids) startNode(nodes.get(id)!);
  coordinator.start(openingPages().map((data, page) => ({ page, version: 0, data })), ids);
  world.after(CONTAINERS.roundEveryMs, rounds);
  world.after(CONTAINERS.evictEveryMs.min, evictions);
  const faults = drawContainerFaults(faultRng, CONTAINERS.faultWindowMs, o.faults);
  for (const f of faults) world.at(f.atMs, () => inject(f));

  let violation: string | null = null;
  try {
    world.run(CONTAINERS.untilMs, () => false, () => {
      checkers.afterEvent(judging());
      coordinator.check();
      for (const id of alive()) {
        const n = nodes.get(id)!;
        for (const u of n.units) {
          if (u.busy !== null && judging() && world.nowMs - u.sinceMs > CONTAINERS.unitStuckMs) throw new Violation('liveness', `a unit on ${id} waited ${world.nowMs - u.sinceMs} ms for op ${u.busy} (${n.core.describeOp(u.busy)})`);
        }
      }
    });
    if (coordinator.committed === 0) throw new Violation('liveness', 'no cut committed');
  } catch (err) {
    violation = err instanceof Violation ? err.message : `crash: ${err instanceof Error ? err.stack ?? err.message : String(err)}`;
  }
  // What the run did, beside the faults it suffered ('stat:' keys are not counted as faults).
  count('stat:cuts', coordinator.committed);
  count('stat:recoveries', coordinator.recoveries);
  count('stat:joins', coordinator.joins);
  for (const id of ids) for (const [k, v] of Object.entries(nodes.get(id)!.core.counters)) count(`stat:${k}`, v);
  log(violation === null ? 'OK' : `VIOLATION ${violation}`);
  return { seed: o.seed, ok: violation === null, violation, events: world.events, simMs: world.nowMs, faults, faultCounts: counts, trace };
}
