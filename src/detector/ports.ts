// The detector's shells take the runtime's ports (src/runtime/ports.ts).
export type { Clock, TimerPort } from '../runtime/ports.js';
export { realClock, realTimers } from '../runtime/real-ports.js';
