import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { withTmp } from './helpers/tmp.js';

// Generated code is committed; this fails when protos/ changed without
// `npm run proto`.

function files(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? files(join(dir, d.name), join(prefix, d.name)) : [join(prefix, d.name)],
  ).sort();
}

describe('generated gRPC code', () => {
  it('matches what `npm run proto` generates from protos/', async () => {
    await withTmp('proto', async (out) => {
      execFileSync('npx', ['buf', 'generate', '-o', out], { stdio: 'pipe' });
      const fresh = join(out, 'src', 'gen');
      expect(files(fresh)).toEqual(files('src/gen'));
      for (const f of files('src/gen')) {
        expect(readFileSync(join(fresh, f), 'utf8'), f).toBe(readFileSync(join('src/gen', f), 'utf8'));
      }
    });
  });
});
