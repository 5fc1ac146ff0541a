// Lint: the architecture's mechanical rules (ARCHITECTURE.md §8, CONVENTIONS.md §1).
// Import arrows point down only (cli/demo -> tiers -> protocol/store/detector ->
// wire/runtime -> gen), and core folders stay pure. Each message names the rule
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
const corePurity = {
  files: coreFiles,
  rules: {
    'no-restricted-globals': ['error',
      ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'performance', 'process', 'fetch'].map((name) => ({ name, message: pureWhy })),
    ],
    'no-restricted-properties': ['error',
      { object: 'Date', property: 'now', message: pureWhy },
      { object: 'Math', property: 'random', message: pureWhy },
    ],
    'no-restricted-syntax': ['error', { selector: 'FunctionDeclaration[async=true], ArrowFunctionExpression[async=true], FunctionExpression[async=true]', message: `a core has no async: ${pureWhy}` }],
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
  corePurity,
  { files: coreFiles, rules: { 'no-restricted-imports': ['error', { patterns: purePatterns }] } },
  // A core inside a tier keeps its tier's boundaries too (one rule setting replaces another in flat config).
  ...Object.entries(boundaries).map(([glob, patterns]) => ({
    files: coreFiles.filter((f) => f.startsWith(glob.slice(0, -2))).concat(`${glob.slice(0, -3)}/**/core/**/*.ts`),
    rules: { 'no-restricted-imports': ['error', { patterns: [...patterns, ...purePatterns] }] },
  })),
);
