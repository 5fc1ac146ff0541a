import type { Command } from 'commander';
import { checkName } from '../common/names.js';
import { checkHostPort } from '../node/config.js';
import { AgentClient } from '../wire/agent-client.js';
import { ClusterClient } from '../wire/cluster-client.js';
import { GridClient } from '../wire/grid-client.js';
import { jobActionToWire } from '../wire/job-action.js';
import { line, parseEpochFlag, printJson, UsageError } from './output.js';
import { clientSecurity } from './tls-flags.js';

// `gridckpt job cancel|delete|restore --grid|--cluster|--agent ADDR JOB`:
// job control, one verb set for every tier.
//   cancel   stop the job's units; the job stays, with its epochs (restorable)
//   delete   cancel if needed, then forget the job (its id is free; its epochs
//            stay in the store until its retention collects them)
//   restore  stop the units, load the last committed epoch (or --epoch N),
//            start the units again
// Each tier controls the jobs it owns: a grid job at the grid (--grid), a
// job a cluster runs on its own at the cluster (--cluster; a grid job's share
// there is refused, naming --grid), a job an agent runs on its own at the
// agent (--agent). The cores decide (cluster and grid:
// core/supervisor-control.ts); every answer comes once the action is done.

type Verb = 'cancel' | 'delete' | 'restore';
interface JobOpts { agent?: string; cluster?: string; grid?: string; epoch?: string; json?: boolean }

function target(o: JobOpts): { tier: 'agent' | 'cluster' | 'grid'; address: string } {
  const given = (['agent', 'cluster', 'grid'] as const).filter((t) => o[t] !== undefined);
  if (given.length !== 1) throw new UsageError(`name exactly one tier: --agent, --cluster or --grid ADDR (got ${given.length === 0 ? 'none' : given.map((t) => `--${t}`).join(', ')})`);
  const tier = given[0]!;
  return { tier, address: checkHostPort(`${tier} address`, o[tier]!) };
}

async function run(verb: Verb, jobArg: string, o: JobOpts): Promise<void> {
  const jobId = checkName('job id', jobArg);
  const { tier, address } = target(o);
  if (verb !== 'restore' && o.epoch !== undefined) throw new UsageError(`--epoch is for restore only (job ${verb})`);
  if (tier === 'cluster') return atCluster(verb, jobId, address, o);
  if (tier === 'grid') return atGrid(verb, jobId, address, o);
  const c = new AgentClient(address, undefined, {}, clientSecurity());
  try {
    switch (verb) {
      case 'cancel': {
        const r = await c.stopJob({ jobId });
        if (o.json) return printJson(r.job);
        return line(`job ${jobId} cancelled on ${address}: ${r.job!.state}; its epochs are kept (job restore brings it back)`);
      }
      case 'delete': {
        const r = await c.deleteJob({ jobId });
        if (o.json) return printJson(r.job);
        return line(`job ${jobId} deleted on ${address} (units ${r.job!.state}); its epochs stay in the store until retention collects them`);
      }
      case 'restore': {
        const r = await c.restore({ jobId, epoch: parseEpochFlag(o.epoch) });
        if (o.json) return printJson(r);
        for (const s of r.skipped) line(`skipped epoch ${s.epoch}: ${s.reason}`);
        return line(`job ${jobId} restored on ${address} from epoch ${r.epoch!.epoch} (${r.pagesLoaded} pages); units restarted`);
      }
    }
  } finally {
    c.close();
  }
}

function stopsLine(unconfirmed: readonly string[], what: string, leaser: string): string {
  return unconfirmed.length === 0 ? '' : `; ${what} ${unconfirmed.join(', ')} did not confirm the stop: their units stop when the lease ${leaser} no longer renews lapses`;
}

async function atCluster(verb: Verb, jobId: string, address: string, o: JobOpts): Promise<void> {
  const c = new ClusterClient(address, undefined, {}, clientSecurity());
  try {
    const r = await c.controlJob({ jobId, action: jobActionToWire(verb), epoch: parseEpochFlag(o.epoch) });
    if (o.json) return printJson(r);
    const stops = stopsLine(r.unconfirmedNodes, 'nodes', 'the cluster');
    if (verb === 'cancel') return line(`job ${jobId} cancelled in cluster ${address}: ${r.state}; its epochs are kept (job restore brings it back)${stops}`);
    if (verb === 'delete') return line(`job ${jobId} deleted in cluster ${address}; its epochs stay in the store (gridckpt gc collects them)${stops}`);
    for (const s of r.skipped) line(`skipped epoch ${s.epoch}: ${s.reason}`);
    return line(`job ${jobId} restored in cluster ${address} from epoch ${r.epoch}; units running`);
  } finally {
    c.close();
  }
}

async function atGrid(verb: Verb, jobId: string, address: string, o: JobOpts): Promise<void> {
  const c = new GridClient(address, undefined, {}, clientSecurity());
  try {
    const r = await c.controlGridJob({ jobId, action: jobActionToWire(verb), gridEpoch: parseEpochFlag(o.epoch) });
    if (o.json) return printJson(r);
    const stops = stopsLine(r.unconfirmedClusters, 'clusters', 'the grid');
    if (verb === 'cancel') return line(`grid job ${jobId} cancelled: ${r.state}; its recovery lines are kept (job restore brings it back)${stops}`);
    if (verb === 'delete') return line(`grid job ${jobId} deleted; its epochs stay in the clusters' stores${stops}`);
    for (const p of r.passedOver) line(`passed over ${p}`);
    return line(`grid job ${jobId} restored from line ${r.gridEpoch}; units running`);
  } finally {
    c.close();
  }
}

export function addJobCommand(program: Command): void {
  const job = program.command('job').description('job control at any tier: cancel, delete, restore');
  for (const [verb, what] of [
    ['cancel', 'stop the job\'s units and keep the job and its epochs'],
    ['delete', 'cancel the job if it runs, then forget it (its epochs become collectable)'],
    ['restore', 'restore the job from its last committed epoch, or --epoch N'],
  ] as const) {
    const cmd = job.command(`${verb} <job>`).description(what)
      .option('--agent <host:port>', 'a node agent (a job it runs on its own)')
      .option('--cluster <host:port>', 'a cluster coordinator')
      .option('--grid <host:port>', 'the grid coordinator')
      .option('--json', 'print JSON');
    if (verb === 'restore') cmd.option('--epoch <n>', 'epoch number (at the grid: the recovery line\'s grid epoch), or latest (the newest)');
    cmd.action((jobArg: string, o: JobOpts) => run(verb, jobArg, o));
  }
}
