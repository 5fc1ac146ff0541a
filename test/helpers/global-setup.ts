import { execFileSync } from 'node:child_process';

// Integration tests start real agent processes from dist/: compile once.
export default function setup(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
}
