// The detector's shells take the runtime's ports (src/runtime/ports.ts);
// the roots pass the real ones, tests and the simulator their own.
export type { Clock, TimerPort } from '../runtime/ports.js';
export type { TimePorts } from '../runtime/runtime.js';
