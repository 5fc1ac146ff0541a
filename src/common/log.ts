import { pino, type Logger } from 'pino';

export type { Logger };

// Structured JSON lines on stderr, written synchronously so that a crash
// (or a kill -9 right after a line) never loses what was said before it.
export function createLogger(name: string, level = process.env['GRIDCKPT_LOG_LEVEL'] ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
