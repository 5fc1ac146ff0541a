import type { Clock, Rng, TimerPort } from './ports.js';

// What every shell takes through its constructor instead of reaching for
// globals (CONVENTIONS §3): the clock, timers, a PRNG, and how it reaches its
// peers. Clients is the typed client factory; it is defined in src/wire
// (TierRuntime), which sits above runtime, so runtime names it only as a
// parameter. Only the composition roots build a real one (realRuntime in
// src/wire/real-clients.ts); the simulator builds its own.

export interface Runtime<Clients = unknown> {
  readonly clock: Clock;
  readonly timers: TimerPort;
  readonly rng: Rng;
  readonly clients: Clients;
}

/** What a shell that only reads the time and waits needs (any Runtime is one). */
export interface TimePorts {
  readonly clock: Clock;
  readonly timers: TimerPort;
}
