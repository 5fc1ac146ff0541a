import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { crc32c } from '@node-rs/crc32';
import { scriptPath } from '../common/script-path.js';

// CRC32C on a second core. A restore is CPU-bound on its checksums (one
// native pass over every byte, ~6 GB/s on one core, beside the page-cache copy
// on the I/O pool): part-stream.ts gives half of each large read to a worker
// thread while it checks the other half itself. Only bytes in a
// SharedArrayBuffer (the page frames, frames.ts) can be read in place by a
// worker; anything else is checked here, as it is when no worker runs (one
// core) or one failed. A worker is referenced only while it owes an answer,
// so an idle one never keeps the process alive.
// Invariants:
//   1. crc(view) resolves to crc32c(view) exactly, wherever it ran.
//   2. A worker's failure loses no request: what it owed is computed here.

/** Below this, a message costs more than the CRC it moves (~0.1 ms vs 6 GB/s). */
export const OFFLOAD_MIN_BYTES = 1024 * 1024;

/** A buffer is sent once, with its number; later requests name it by number (a SharedArrayBuffer in a message costs ~0.25 ms). */
export interface CrcRequest { id: number; buffer: number; shared?: SharedArrayBuffer; offset: number; length: number }
export interface CrcResult { id: number; crc: number }

interface Pending { view: Uint8Array; resolve: (crc: number) => void }

class CrcWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private readonly buffers = new WeakMap<SharedArrayBuffer, number>();
  private ids = 0;
  private bufferIds = 0;
  broken = false;

  constructor() {
    this.worker = new Worker(scriptPath(import.meta.url, './crc-worker.js'));
    this.worker.unref();
    this.worker.on('message', (r: CrcResult) => this.settle(r.id, r.crc));
    // Invariant 2: whatever it owed is checked here.
    const fail = (): void => {
      this.broken = true;
      for (const [id, p] of this.pending) this.settle(id, crc32c(p.view));
    };
    this.worker.on('error', fail);
    this.worker.on('exit', fail);
  }

  crc(view: Uint8Array & { buffer: SharedArrayBuffer }): Promise<number> {
    return new Promise((resolve) => {
      const id = ++this.ids;
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { view, resolve });
      let buffer = this.buffers.get(view.buffer);
      const known = buffer !== undefined;
      if (buffer === undefined) this.buffers.set(view.buffer, buffer = ++this.bufferIds);
      const req: CrcRequest = { id, buffer, offset: view.byteOffset, length: view.byteLength, ...(known ? {} : { shared: view.buffer }) };
      this.worker.postMessage(req);
    });
  }

  close(): Promise<number> {
    return this.worker.terminate();
  }

  private settle(id: number, crc: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
    p.resolve(crc);
  }
}

let worker: CrcWorker | null | undefined;
/** Bytes answered by a worker since the process started (tests, the bench's context line). */
let offloaded = 0;

export function offloadedBytes(): number {
  return offloaded;
}

function theWorker(): CrcWorker | null {
  if (worker === undefined) {
    // One core: a worker would only take turns with this thread.
    worker = availableParallelism() > 1 && process.env['GRIDCKPT_CRC_THREADS'] !== '0' ? new CrcWorker() : null;
  }
  return worker !== null && !worker.broken ? worker : null;
}

/** Whether crc(view) may run on another thread (a shared buffer, large enough, and a worker to take it). */
export function canOffload(view: Uint8Array): boolean {
  return view.byteLength >= OFFLOAD_MIN_BYTES && view.buffer instanceof SharedArrayBuffer && theWorker() !== null;
}

/** crc32c(view), on the worker thread when canOffload(view), else here (invariant 1). */
export function crcElsewhere(view: Uint8Array): Promise<number> {
  const w = canOffload(view) ? theWorker() : null;
  if (w === null) return Promise.resolve(crc32c(view));
  offloaded += view.byteLength;
  return w.crc(view as Uint8Array & { buffer: SharedArrayBuffer });
}

/** Stops the worker (tests; a process exits without it: the worker is unreferenced when idle). */
export async function closeCrcOffload(): Promise<void> {
  const w = worker;
  worker = undefined;
  if (w) await w.close();
}
