/**
 * Structured JSON logs on stdout (pino). The destination is asynchronous with a small buffer, so an access log
 * line costs the data path a serialisation, not a write system call; it is flushed on shutdown.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const dest = destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 });
  return pino({ level, base: { service: 'ballast' }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}
