import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { AgentClient } from '../wire/agent-client.js';
import { checkHostPort } from '../node/config.js';
import { checkName } from '../common/names.js';
import type { JobSpec } from '../gen/gridckpt/v1/node_agent.js';
import { GridError } from '../common/errors.js';
import { DEFAULT_LIMITS } from '../node/config.js';
import { checkJobSpec, jobSpecFromJson, type JobSpecValue, type RestartPolicy } from '../protocol/job-spec.js';
import { ClusterClient } from '../wire/cluster-client.js';
import { GridClient } from '../wire/grid-client.js';
import { printJson, line, parseEpochFlag, parseIntFlag, UsageError } from './output.js';
import { gridStatus, gridCheckpoint } from './grid-cmd.js';
import { clientSecurity } from './tls-flags.js';

// Commands that talk to a running node agent (and `start`, which also submits
// a spec file to a cluster or the grid).

interface Common {
  agent: string;
  json?: boolean;
}

function client(opts: Common): AgentClient {
  return new AgentClient(checkHostPort('agent address', opts.agent), undefined, {}, clientSecurity());
}

function withClient<T extends Common>(fn: (c: AgentClient, opts: T) => Promise<void>) {
  return async (opts: T) => {
    const c = client(opts);
    try {
      await fn(c, opts);
    } finally {
      c.close();
    }
  };
}

async function startOnCluster(address: string, job: JobSpec, restartPolicy: RestartPolicy | undefined, json: boolean): Promise<void> {
  const c = new ClusterClient(address, undefined, {}, clientSecurity());
  try {
    const r = await c.submitJob({ job, ...(restartPolicy ? { restartPolicy } : {}) });
    if (json) return printJson(r.job);
    line(`job ${job.jobId} started in cluster ${address}: ${r.job!.placements.map((p) => `${p.unitId}@${p.nodeId}`).join(' ')}`);
  } finally {
    c.close();
  }
}

async function startOnGrid(address: string, job: JobSpec, restartPolicy: RestartPolicy | undefined, json: boolean): Promise<void> {
  const c = new GridClient(address, undefined, {}, clientSecurity());
  try {
    const r = await c.submitGridJob({ job, ...(restartPolicy ? { restartPolicy } : {}) });
    if (json) return printJson(r.job);
    line(`grid job ${job.jobId} started: ${Object.entries(r.job!.clusters).map(([u, cl]) => `${u}@${cl}`).join(' ')}`);
  } finally {
    c.close();
  }
}

export function addClientCommands(program: Command): void {
  const agentOpt = ['--agent <host:port>', 'node agent address', process.env['GRIDCKPT_AGENT'] ?? '127.0.0.1:7070'] as const;

  program.command('status').description('show a grid (--grid) or a node agent (--agent): jobs, units, memory, freezer')
    .option('--grid <host:port>', 'a grid coordinator\'s address')
    .option(...agentOpt).option('--json', 'print JSON')
    .action((o: Common & { grid?: string }) => (o.grid ? gridStatus(o.grid, o.json === true) : agentStatus(o)));

  const agentStatus = withClient<Common>(async (c, o) => {
      const s = await c.status();
      if (o.json) return printJson(s);
      line(`node ${s.nodeId} (incarnation ${s.incarnation}), freezer ${s.freezer}`);
      const m = s.memory!;
      line(`memory: ${m.pagesResident} resident / ${m.pagesSwapped} swapped of ${m.pagesTotal} pages; budget ${m.budgetBytes} B; swap outs ${m.swapOuts}, ins ${m.swapIns}`);
      for (const j of s.jobs) {
        line(`job ${j.jobId}: ${j.state}, last epoch ${j.lastEpoch}, ${j.checkpointsCommitted} committed, ${j.checkpointsFailed} failed${j.lastError ? ` (last error: ${j.lastError})` : ''}`);
        for (const u of j.units) line(`  unit ${u.unitId}: pid ${u.pid} ${u.state}${u.state === 'exited' ? ` code ${u.exitCode}${u.signal ? ` ${u.signal}` : ''}` : ''}, starts ${u.starts}`);
      }
  });

  program.command('start').description('start a job from a JSON spec file (jobId, units[], checkpointIntervalMs, fullEvery, restartPolicy): on an agent, a cluster (--cluster) or the grid (--grid)')
    .option(...agentOpt).option('--cluster <host:port>', 'submit it to a cluster coordinator instead').option('--grid <host:port>', 'submit it to the grid coordinator instead')
    .requiredOption('--spec <file>', 'job spec JSON').option('--json', 'print JSON')
    .action(async (o: Common & { spec: string; cluster?: string; grid?: string }) => {
      if (o.cluster !== undefined && o.grid !== undefined) throw new UsageError('name one of --cluster and --grid, not both');
      let text: string;
      try {
        text = await readFile(o.spec, 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read job spec ${JSON.stringify(o.spec)}: ${(err as Error).message}`);
      }
      const spec = specFromFile(o.spec, text);
      const job: JobSpec = { jobId: spec.jobId, units: spec.units, checkpointIntervalMs: spec.checkpointIntervalMs, fullEvery: spec.fullEvery };
      const restartPolicy = spec.restartPolicy ?? undefined;
      if (o.cluster !== undefined) return startOnCluster(checkHostPort('cluster address', o.cluster), job, restartPolicy, o.json === true);
      if (o.grid !== undefined) return startOnGrid(checkHostPort('grid address', o.grid), job, restartPolicy, o.json === true);
      if (spec.restartPolicy) process.stderr.write(`note: restartPolicy is applied by a cluster coordinator; a job started on an agent alone fails when a unit fails\n`);
      await withClient<Common>(async (c) => {
        const r = await c.startJob({ job, leaseBound: false, fresh: false });
        if (o.json) return printJson(r.job);
        line(`job ${r.job!.jobId} started with ${r.job!.units.length} units`);
      })(o);
    });

  program.command('stop').description('stop a job\'s units').option(...agentOpt).requiredOption('--job <id>').option('--json', 'print JSON')
    .action(withClient<Common & { job: string }>(async (c, o) => {
      const r = await c.stopJob({ jobId: checkName('job id', o.job) });
      if (o.json) return printJson(r.job);
      line(`job ${o.job}: ${r.job!.state}`);
    }));

  program.command('checkpoint').description('checkpoint a job now: a grid round (--grid) or a node agent\'s local epoch (--agent)')
    .argument('[job]', 'the job id (or --job)')
    .option('--grid <host:port>', 'a grid coordinator\'s address').option(...agentOpt).option('--job <id>')
    .option('--full', 'agent: write a full epoch').option('--json', 'print JSON')
    .action((job: string | undefined, o: Common & { job?: string; full?: boolean; grid?: string }) => {
      const jobId = job ?? o.job;
      if (!jobId) throw new UsageError('checkpoint needs a job: gridckpt checkpoint <job>');
      return o.grid ? gridCheckpoint(o.grid, jobId, o.json === true) : agentCheckpoint({ ...o, job: jobId });
    });

  const agentCheckpoint = withClient<Common & { job: string; full?: boolean }>(async (c, o) => {
      const r = await c.checkpoint({ jobId: checkName('job id', o.job), full: o.full ?? false });
      if (o.json) return printJson(r);
      const e = r.epoch!;
      line(`epoch ${e.epoch} committed (${e.full ? 'full' : `incremental on ${e.parentEpoch}`}): ${e.pageCount} pages, ${e.dataBytes} bytes; frozen ${r.freezeWindowMs.toFixed(2)} ms, write ${r.writeMs.toFixed(1)} ms`);
  });

  program.command('epochs').description('list a job\'s committed epochs').option(...agentOpt).requiredOption('--job <id>').option('--json', 'print JSON')
    .action(withClient<Common & { job: string }>(async (c, o) => {
      const r = await c.listEpochs({ jobId: checkName('job id', o.job) });
      if (o.json) return printJson(r.epochs);
      for (const e of r.epochs) line(`epoch ${e.epoch}\t${e.full ? 'full' : `parent ${e.parentEpoch}`}\tchain ${e.chainLength}\t${e.pageCount} pages\t${e.dataBytes} B\t${new Date(Number(e.createdUnixMs)).toISOString()}`);
      if (r.epochs.length === 0) line(`job ${o.job} has no committed epoch`);
    }));

  program.command('verify').description('check every page checksum of an epoch\'s chain').option(...agentOpt).requiredOption('--job <id>')
    .option('--epoch <n>', 'epoch number or latest', 'latest').option('--json', 'print JSON')
    .action(withClient<Common & { job: string; epoch: string }>(async (c, o) => {
      const r = await c.verifyEpoch({ jobId: checkName('job id', o.job), epoch: parseEpochFlag(o.epoch) });
      if (o.json) printJson(r);
      else {
        line(`epoch ${r.epoch}: ${r.ok ? 'ok' : 'CORRUPT'}, ${r.pagesChecked} pages checked`);
        for (const e of r.errors) line(`  ${e}`);
      }
      if (!r.ok) process.exitCode = 1;
    }));

  program.command('restore').description('stop a job\'s units, load an epoch, restart them').option(...agentOpt).requiredOption('--job <id>')
    .option('--epoch <n>', 'epoch number or latest (newest that verifies)', 'latest').option('--json', 'print JSON')
    .action(withClient<Common & { job: string; epoch: string }>(async (c, o) => {
      const r = await c.restore({ jobId: checkName('job id', o.job), epoch: parseEpochFlag(o.epoch) });
      if (o.json) return printJson(r);
      for (const s of r.skipped) line(`skipped epoch ${s.epoch}: ${s.reason}`);
      line(`restored job ${o.job} from epoch ${r.epoch!.epoch} (${r.pagesLoaded} pages); units restarted`);
    }));

  program.command('wait').description('wait until every unit of a job has exited').option(...agentOpt).requiredOption('--job <id>')
    .option('--timeout-ms <ms>', 'give up after', '600000').option('--json', 'print JSON')
    .action(withClient<Common & { job: string; timeoutMs: string }>(async (c, o) => {
      const r = await c.waitJob({ jobId: checkName('job id', o.job), timeoutMs: parseIntFlag('timeout', o.timeoutMs, 1, 3_600_000) });
      if (o.json) printJson(r);
      else line(`job ${o.job}: ${r.job!.state}${r.done ? '' : ' (timed out waiting)'}`);
      if (!r.done) process.exitCode = 1;
    }));
}

/**
 * A job spec file, read with the schema every tier checks (protocol/job-spec.ts): its shape strictly (a field
 * it does not know, such as checkpointInterval, is named, never ignored; args and env may be left out), then its
 * values with this agent's default limits. Errors name the file and the field.
 */
export function specFromFile(file: string, text: string): JobSpecValue {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`job spec ${JSON.stringify(file)} is not JSON: ${(err as Error).message}`);
  }
  try {
    return checkJobSpec(jobSpecFromJson(value), { maxUnits: DEFAULT_LIMITS.maxUnitsPerJob });
  } catch (err) {
    if (err instanceof GridError) throw new UsageError(`job spec ${JSON.stringify(file)}: ${err.message}`);
    throw err;
  }
}
