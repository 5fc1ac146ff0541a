// A light entry of `gridckpt gc` (the crash tests start it hundreds of times:
// it loads the store and the collector only, not every command's modules).
// Usage: node gc-main.js STORE_DIR KEEP_LAST
import { runGc } from './gc-cmd.js';

const [storeDir, keepLast] = process.argv.slice(2);
if (!storeDir || !keepLast) {
  process.stderr.write('usage: gc-main STORE_DIR KEEP_LAST\n');
  process.exit(2);
}
process.stdout.write('{"event":"ready"}\n');
runGc({ storeDir, jobs: [], keepLast: Number(keepLast), keepForMs: 0 }, (line) => process.stdout.write(`${line}\n`)).catch((err: unknown) => {
  process.stderr.write(`gc: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
