/**
 * Structured JSON logs on stdout (pino). The destination is asynchronous (sonic-boom batches lines while a write is
 * in flight), so an access log line costs the data path a serialisation, not a blocking write; flushed on shutdown.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const dest = destination ?? pino.destination({ dest: 1, sync: false });
  // Epoch milliseconds (pino's default), not an ISO string: formatting a date per access line costs ~1% of a request.
  return pino({ level, base: { service: 'ballast' } }, dest);
}
