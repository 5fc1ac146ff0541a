// Dropping files' pages from the kernel's page cache, for the cold-read
// figures. Node has no posix_fadvise; GNU dd's `iflag=nocache` calls
// posix_fadvise(POSIX_FADV_DONTNEED) on its input (with count=0: on the whole
// file, reading nothing), which drops the file's clean cached pages: only the
// benchmark's own files, not the machine's whole cache as
// `echo 1 > /proc/sys/vm/drop_caches` would (other work on a shared machine
// keeps its cache). The files must be clean (fsynced) first: dirty pages are
// not dropped. `fincore` (util-linux), when present, says how much of each
// file is still resident afterwards; a drop that leaves pages behind is
// reported, never passed off as cold.
//
// dd and fincore run in one helper shell started before the benchmark holds
// its large buffers, never spawned from this process while it does: a spawn
// forks this process (libuv), after which the first write to every page it
// holds is a copy-on-write fault (~15 us a page on the VM measured, 4 s per
// GiB), which would land on the restore's page frames and not on the
// reference's small buffer.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

const HELPER = `
while IFS= read -r f; do
  if dd if="$f" iflag=nocache count=0 status=none 2>/dev/null; then
    r=$(fincore --bytes --noheadings --output RES "$f" 2>/dev/null) || r=unknown
    echo "ok \${r:-unknown}"
  else
    echo "fail"
  fi
done
`;

export interface CacheDropper {
  /** Drops every file's cached pages; resolves with the bytes still resident (NaN when fincore is unavailable), or throws why it cannot. */
  drop(files: readonly string[]): Promise<number>;
  close(): void;
}

/** Starts the helper; call it before allocating large buffers. */
export function openCacheDropper(): CacheDropper {
  const child: ChildProcessWithoutNullStreams = spawn('/bin/sh', ['-c', HELPER], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines = createInterface({ input: child.stdout });
  const waiting: Array<(line: string | null) => void> = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  child.on('exit', () => {
    for (const w of waiting.splice(0)) w(null);
  });
  child.on('error', () => {
    for (const w of waiting.splice(0)) w(null);
  });
  const ask = (file: string): Promise<string | null> => new Promise((resolve) => {
    if (child.exitCode !== null || !child.stdin.writable) return resolve(null);
    waiting.push(resolve);
    child.stdin.write(`${file}\n`);
  });
  return {
    async drop(files) {
      let resident = 0;
      for (const file of files) {
        const answer = await ask(file);
        if (answer === null) throw new Error('the page-cache helper shell is gone');
        if (!answer.startsWith('ok ')) throw new Error(`dd if=${file} iflag=nocache failed`);
        const bytes = Number(answer.slice(3));
        resident = Number.isNaN(resident) || Number.isNaN(bytes) ? Number.NaN : resident + bytes;
      }
      return resident;
    },
    close() {
      child.stdin.end();
      lines.close();
    },
  };
}
