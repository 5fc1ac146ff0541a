// Failpoints let crash tests stop a real process at an exact step, the way
// fail-rs and FoundationDB's buggify do. GRIDCKPT_FAILPOINTS holds a comma
// list of `name=action`, action one of: kill (SIGKILL self), error (throw).
// Unset in production, so every call is one map lookup.

type FailAction = 'kill' | 'error';

function parse(spec: string | undefined): Map<string, FailAction> {
  const points = new Map<string, FailAction>();
  if (!spec) return points;
  for (const item of spec.split(',')) {
    const [name, action] = item.trim().split('=');
    if (!name) continue;
    if (action !== 'kill' && action !== 'error') {
      throw new Error(`GRIDCKPT_FAILPOINTS: bad action ${JSON.stringify(action)} for ${name} (use kill or error)`);
    }
    points.set(name, action);
  }
  return points;
}

const active = parse(process.env['GRIDCKPT_FAILPOINTS']);

export function failpoint(name: string): void {
  const action = active.get(name);
  if (action === undefined) return;
  if (action === 'kill') process.kill(process.pid, 'SIGKILL');
  throw new Error(`failpoint ${name} fired`);
}
