import * as fs from 'node:fs';
import { checkSlotAndPage, PAGE_BYTES, type SwapPort } from './swap-port.js';

// The real swap port: one file on local disk, slot N at byte N * PAGE_BYTES.
// Swap does not survive a restart (the pages it holds are rebuilt from a
// checkpoint), so the file is truncated at open. I/O errors (ENOSPC, EIO)
// are thrown as they are; PageMemory stays consistent and the agent's shell
// turns them into a failure report.

export class SwapFile implements SwapPort {
  private fd: number | null;
  readonly path: string;

  constructor(path: string) {
    this.path = path;
    // Page data is the job's: readable by the agent's user alone, also when an older file was left wider open.
    this.fd = fs.openSync(path, 'w+', 0o600);
    fs.fchmodSync(this.fd, 0o600);
  }

  write(slot: number, page: Uint8Array): void {
    checkSlotAndPage('write', slot, page);
    const fd = this.openFd();
    const base = slot * PAGE_BYTES;
    let done = 0;
    while (done < PAGE_BYTES) {
      const n = fs.writeSync(fd, page, done, PAGE_BYTES - done, base + done);
      if (n <= 0) throw new Error(`swap file ${this.path}: write at slot ${slot} made no progress`);
      done += n;
    }
  }

  read(slot: number, into: Uint8Array): void {
    checkSlotAndPage('read', slot, into);
    const fd = this.openFd();
    const base = slot * PAGE_BYTES;
    let done = 0;
    while (done < PAGE_BYTES) {
      const n = fs.readSync(fd, into, done, PAGE_BYTES - done, base + done);
      if (n <= 0) throw new Error(`swap file ${this.path}: short read at slot ${slot} (${done} of ${PAGE_BYTES} bytes)`);
      done += n;
    }
  }

  /** Closes the file; idempotent. The file itself is left for the caller to remove. */
  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    fs.closeSync(fd);
  }

  private openFd(): number {
    if (this.fd === null) throw new Error(`swap file ${this.path} used after close`);
    return this.fd;
  }
}
