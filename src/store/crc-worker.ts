import { parentPort } from 'node:worker_threads';
import { crc32c } from '@node-rs/crc32';
import type { CrcRequest, CrcResult } from './crc-offload.js';

// One CRC32C thread of crc-offload.ts: it reads the bytes where they lie (a
// SharedArrayBuffer the page frames live in) and answers their CRC; it never
// writes them.

/** The buffers the main thread sent, by number. Never dropped: they are the agent's frame chunks, which live as long as it does. */
const buffers = new Map<number, SharedArrayBuffer>();

parentPort!.on('message', (m: CrcRequest) => {
  if (m.shared) buffers.set(m.buffer, m.shared);
  const answer: CrcResult = { id: m.id, crc: crc32c(new Uint8Array(buffers.get(m.buffer)!, m.offset, m.length)) };
  parentPort!.postMessage(answer);
});
