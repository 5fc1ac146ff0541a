import { fileURLToPath } from 'node:url';
import { sep } from 'node:path';

// The path of a compiled script next to the calling module. Under vitest the
// sources run as .ts from src/, but the processes we spawn must run the
// compiled twin in dist/src/.
export function scriptPath(metaUrl: string, relative: string): string {
  const path = fileURLToPath(new URL(relative, metaUrl));
  if (!metaUrl.endsWith('.ts')) return path;
  const at = path.lastIndexOf(`${sep}src${sep}`);
  return `${path.slice(0, at)}${sep}dist${path.slice(at)}`;
}
