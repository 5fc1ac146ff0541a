import { parentPort, workerData } from 'node:worker_threads';
import { runBatch, type BatchSpec } from './batch.js';

// A worker thread of `npm run sim`: runs its share of the seeds.
parentPort!.postMessage(runBatch(workerData as BatchSpec));
