import { access, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { invalidArgument } from '../../common/errors.js';
import { quoteValue } from '../../common/names.js';

// What a unit process gets from its agent besides its spec: a minimal
// environment, and a command checked to exist before anything starts.
//
// A unit does not inherit the agent's environment (unit.proto states the
// contract): it would see whatever the agent was started with — secrets,
// the agent's own GRIDCKPT_* settings (an agent started with
// GRIDCKPT_RESTORED_EPOCH=42 made every fresh unit think it was restored),
// failpoints meant for the agent. It gets PATH (so that a bare command name
// resolves as it does for the agent), then its spec's env (which may set
// PATH, HOME, LANG, …), then the agent's GRIDCKPT_* variables for it.

/** PATH when the agent itself has none (the usual default of login shells). */
export const DEFAULT_UNIT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The environment a unit starts with: PATH, its spec's env, then the agent's variables for it (which win). */
export function unitEnv(specEnv: Record<string, string>, agentVars: Record<string, string>, agentPath = process.env['PATH']): Record<string, string> {
  return { PATH: agentPath ?? DEFAULT_UNIT_PATH, ...specEnv, ...agentVars };
}

/**
 * Refuses a command that cannot be executed: a path (with a slash) that is
 * not an executable regular file, or a bare name found in none of the
 * unit's PATH directories. Checked before any unit of the job starts, so a
 * typo is an INVALID_ARGUMENT naming the unit, not a unit that "started"
 * and exited 127 with the reason in its log file.
 */
export async function checkCommand(at: string, command: string, path: string): Promise<void> {
  if (command.includes('/')) {
    const why = await notExecutable(command);
    if (why) throw invalidArgument(`${at}: command ${quoteValue(command)} ${why}`);
    return;
  }
  for (const dir of path.split(delimiter)) {
    if (dir === '' || !isAbsolute(dir)) continue; // a relative PATH entry depends on the cwd: not searched
    if ((await notExecutable(join(dir, command))) === null) return;
  }
  throw invalidArgument(`${at}: command ${quoteValue(command)} is not found in the unit's PATH (${quoteValue(path)})`);
}

async function notExecutable(file: string): Promise<string | null> {
  try {
    const s = await stat(file);
    if (!s.isFile()) return 'is not a regular file';
    await access(file, constants.X_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'does not exist';
    if (code === 'EACCES') return 'is not executable by the agent';
    return `cannot be checked (${code ?? String(err)})`;
  }
}
