// Lint: the architecture's mechanical rules (ARCHITECTURE.md §8, CONVENTIONS.md §1, §3).
// Import arrows point down only (cli/demo -> tiers -> protocol/store/detector ->
// wire/runtime -> gen), core folders stay pure, and shells take their ports. Each message names the rule
// of the architecture a violation breaks.
import tseslint from 'typescript-eslint';

const tier = (name) => ({ regex: `(^|/)${name}/`, message: '' });
const up = (from, names, why) => names.map((n) => ({ ...tier(n), message: `${from} must not import src/${n}: ${why} (ARCHITECTURE.md §8: arrows point down only)` }));

const faces = ['cli', 'demo'];
const tiers = ['node', 'cluster', 'grid'];
const shared = ['protocol', 'store', 'detector', 'wire', 'runtime', 'common'];

const boundaries = {
  'src/node/**': [...up('a node', ['cluster', 'grid'], 'a node never imports cluster or grid'), ...up('a tier', faces, 'no tier imports a face')],
  'src/cluster/**': [...up('a cluster', ['node', 'grid'], 'tiers talk through src/wire, src/protocol and src/store'), ...up('a tier', faces, 'no tier imports a face')],
  'src/grid/**': [...up('the grid', ['node', 'cluster'], 'tiers talk through src/wire, src/protocol and src/store'), ...up('a tier', faces, 'no tier imports a face')],
  'src/detector/**': up('the detector', [...tiers, ...faces, 'protocol', 'store', 'wire'], 'the detector sits below the tiers'),
  'src/protocol/**': up('protocol', [...tiers, ...faces, 'sim'], 'protocol is shared by the tiers, below them'),
  'src/store/**': up('the store', [...tiers, ...faces, 'protocol', 'sim'], 'the store is shared by the tiers, below them'),
  'src/wire/**': up('wire', [...tiers, ...faces, 'protocol', 'detector', 'sim'], 'wire sits just above gen'),
  'src/runtime/**': up('runtime', [...tiers, ...faces, 'protocol', 'store', 'detector', 'wire', 'sim'], 'runtime ports sit at the bottom'),
  'src/common/**': up('common', [...tiers, ...faces, ...shared.filter((s) => s !== 'common'), 'sim'], 'common utilities sit at the bottom'),
  'src/bank/**': up('the bank job', [...tiers, ...faces, 'sim'], 'the application knows only the unit API'),
  'src/unit/**': up('the unit client', [...tiers, ...faces, 'sim'], 'the application knows only the unit API'),
};

// Pure cores: events and time in, actions out (CONVENTIONS.md §1).
const pureWhy = 'a core is pure: time, randomness and I/O come in as inputs (CONVENTIONS.md §1)';
const coreFiles = ['src/**/core/**/*.ts', 'src/detector/phi-accrual.ts', 'src/detector/monitor.ts', 'src/detector/lease.ts', 'src/node/memory/page-memory.ts'];
const purePatterns = [
  { regex: '^(node:|fs$|fs/|net$|child_process$|os$|@grpc/|prom-client|pino)', message: pureWhy },
  { regex: '(^|/)(runtime|wire|gen|sim)/', message: `core must not import a shell layer: ${pureWhy}` },
  { regex: '(^|/)(round-driver|monitor-driver|heartbeat-loop|lease-keeper)(\\.js)?$', message: `core must not import a driver: ${pureWhy}` },
];
// Ports (CONVENTIONS.md §3): outside the real ports and the composition roots, a shell takes time,
// timers, randomness and its peers' clients from the runtime passed to its constructor.
const portsWhy = 'ports are passed in, never found through globals: only the roots build the real runtime (CONVENTIONS.md §3, ARCHITECTURE.md §8)';
const portsRoots = ['src/runtime/real-ports.ts', 'src/**/run-*.ts', 'src/cli/**', 'src/demo/**', 'src/sim/**', 'src/gen/**', 'src/bank/unit-main.ts'];
// The real clients construct what they wrap: each typed client its generated stub, the factory the typed clients.
const realClients = ['src/wire/*-client.ts', 'src/wire/real-clients.ts', 'src/unit/client.ts'];
const portsRules = {
  'no-restricted-globals': [
    { name: 'setTimeout', message: `use the runtime's timers (sleep, repeat: src/runtime/timers.ts): ${portsWhy}` },
    { name: 'setInterval', message: `use the runtime's timers (repeat: src/runtime/timers.ts): ${portsWhy}` },
    { name: 'performance', message: `use the runtime's clock: ${portsWhy}` },
  ],
  'no-restricted-properties': [
    { object: 'Date', property: 'now', message: `use the runtime's clock.wallMs(): ${portsWhy}` },
    { object: 'performance', property: 'now', message: `use the runtime's clock.nowMs(): ${portsWhy}` },
    { object: 'Math', property: 'random', message: `use the runtime's rng: ${portsWhy}` },
  ],
  'no-restricted-syntax': [
    { selector: 'NewExpression[callee.name=/Client$/]', message: `a client comes from the runtime's client factory (runtime.clients): ${portsWhy}` },
  ],
};
const portsRule = (name) => ({ [name]: ['error', ...portsRules[name]] });

// One rule setting replaces another for the same file: a core keeps its own messages, plus the ports' other entries.
const keyOf = { 'no-restricted-globals': (o) => o.name, 'no-restricted-properties': (o) => `${o.object}.${o.property}`, 'no-restricted-syntax': (o) => o.selector };
const withPorts = (name, own) => {
  const seen = new Set(own.map(keyOf[name]));
  return ['error', ...own, ...portsRules[name].filter((o) => !seen.has(keyOf[name](o)))];
};

const corePurity = {
  files: coreFiles,
  rules: {
    'no-restricted-globals': withPorts('no-restricted-globals',
      ['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'performance', 'process', 'fetch'].map((name) => ({ name, message: pureWhy })),
    ),
    'no-restricted-properties': withPorts('no-restricted-properties', [
      { object: 'Date', property: 'now', message: pureWhy },
      { object: 'Math', property: 'random', message: pureWhy },
    ]),
    'no-restricted-syntax': withPorts('no-restricted-syntax', [
      { selector: 'FunctionDeclaration[async=true], ArrowFunctionExpression[async=true], FunctionExpression[async=true]', message: `a core has no async: ${pureWhy}` },
    ]),
  },
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'src/gen/**', 'coverage/**'] },
  {
    files: ['**/*.ts'],
    languageOptions: { parser: tseslint.parser, parserOptions: { ecmaVersion: 2022, sourceType: 'module' } },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-floating-promises': 'off',
    },
  },
  ...Object.entries(boundaries).map(([glob, patterns]) => ({
    files: [glob],
    rules: { 'no-restricted-imports': ['error', { patterns }] },
  })),
  { files: ['src/**/*.ts'], ignores: portsRoots, rules: { ...portsRule('no-restricted-globals'), ...portsRule('no-restricted-properties') } },
  { files: ['src/**/*.ts'], ignores: [...portsRoots, ...realClients], rules: portsRule('no-restricted-syntax') },
  corePurity,
  { files: coreFiles, rules: { 'no-restricted-imports': ['error', { patterns: purePatterns }] } },
  // A core inside a tier keeps its tier's boundaries too (one rule setting replaces another in flat config).
  ...Object.entries(boundaries).map(([glob, patterns]) => ({
    files: coreFiles.filter((f) => f.startsWith(glob.slice(0, -2))).concat(`${glob.slice(0, -3)}/**/core/**/*.ts`),
    rules: { 'no-restricted-imports': ['error', { patterns: [...patterns, ...purePatterns] }] },
  })),
);
