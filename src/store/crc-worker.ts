import { parentPort } from 'node:worker_threads';
import { crc32c } from '@node-rs/crc32';
import type { CrcRequest, CrcResult } from './crc-offload.js';

// One CRC32C thread of crc-offload.ts: it reads the bytes where they lie (a
// SharedArrayBuffer the page frames live in) and answers their CRC; it never
// writes them.

parentPort!.on('message', (m: CrcRequest) => {
  const answer: CrcResult = { id: m.id, crc: crc32c(new Uint8Array(m.buffer, m.offset, m.length)) };
  parentPort!.postMessage(answer);
});
