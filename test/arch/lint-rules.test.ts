import { describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';

// The architecture's import arrows, core purity and ports are lint rules
// (eslint.config.js); these show that breaking one fails with a message
// naming the rule it breaks, and that the tree as it stands is clean of them.

const eslint = new ESLint({ cwd: process.cwd() });

async function messagesFor(code: string, filePath: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath });
  return r!.messages.map((m) => m.message);
}

describe('architecture lint rules', () => {
  it('a node file importing src/cluster fails, naming the arrow it breaks', async () => {
    const m = await messagesFor("import { x } from '../cluster/cluster-job.js';\nexport const y = x;\n", 'src/node/example.ts');
    expect(m.join('\n')).toMatch(/a node must not import src\/cluster.*arrows point down only/);
  });

  it('a cluster file importing src/grid and a tier importing the cli fail', async () => {
    expect((await messagesFor("import { x } from '../grid/catalog.js';\nexport const y = x;\n", 'src/cluster/example.ts')).join('\n'))
      .toMatch(/a cluster must not import src\/grid/);
    expect((await messagesFor("import { x } from '../cli/main.js';\nexport const y = x;\n", 'src/grid/example.ts')).join('\n'))
      .toMatch(/a tier must not import src\/cli/);
  });

  it('a core reading the clock, using timers, async or node: modules fails', async () => {
    const code = "import fs from 'node:fs';\nexport async function f(): Promise<number> { return Date.now() + Math.random() + (fs ? 1 : 0) + (setTimeout ? 1 : 0); }\n";
    const m = (await messagesFor(code, 'src/cluster/core/example.ts')).join('\n');
    for (const what of ["'node:fs' import is restricted", 'a core has no async', "'Date.now' is restricted", "'Math.random' is restricted", "'setTimeout'"]) {
      expect(m).toContain(what);
    }
  });

  it('a shell reading Date.now() or constructing a client fails, naming the ports rule; a root may', async () => {
    const code = "import { AgentClient } from '../wire/agent-client.js';\nexport const at = (): number => Date.now();\nexport const c = new AgentClient('127.0.0.1:1');\n";
    const m = (await messagesFor(code, 'src/cluster/example.ts')).join('\n');
    expect(m).toMatch(/'Date\.now' is restricted.*clock\.wallMs.*ports are passed in, never found through globals.*CONVENTIONS\.md §3/);
    expect(m).toMatch(/client comes from the runtime's client factory.*CONVENTIONS\.md §3/);
    expect(await messagesFor(code, 'src/cluster/run-example.ts')).toEqual([]);
  });

  it('a core keeps its purity messages and gains the ports rule where it had none', async () => {
    const m = (await messagesFor('export const f = (): number => Date.now() + performance.now();\n', 'src/grid/core/example.ts')).join('\n');
    expect(m).toMatch(/'Date\.now' is restricted.*a core is pure/);
    expect(m).toMatch(/'performance\.now' is restricted.*CONVENTIONS\.md §3/);
  });

  it('the detector may not import a tier, and the store may not import the protocol', async () => {
    expect((await messagesFor("import { x } from '../node/agent.js';\nexport const y = x;\n", 'src/detector/example.ts')).join('\n')).toMatch(/the detector must not import src\/node/);
    expect((await messagesFor("import { x } from '../protocol/core/round.js';\nexport const y = x;\n", 'src/store/example.ts')).join('\n')).toMatch(/the store must not import src\/protocol/);
  });

  it('well-placed imports pass', async () => {
    expect(await messagesFor("import { x } from '../wire/codec.js';\nexport const y = x;\n", 'src/cluster/example.ts')).toEqual([]);
  });
});
