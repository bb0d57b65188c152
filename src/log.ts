/**
 * Structured JSON logs on stdout (pino). The destination is asynchronous (sonic-boom batches lines while a write is
 * in flight), so a line costs the data path a serialisation, not a blocking write; flushed on shutdown. Access
 * lines go through src/access-log.ts, which batches them further.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  // 64 KiB writes (sonic-boom's default is 16 KiB): each write costs a hop to the thread pool, and the access log
  // hands over batches of up to this size.
  const dest = destination ?? pino.destination({ dest: 1, sync: false, maxWrite: 64 * 1024 });
  // Epoch milliseconds (pino's default), not an ISO string: formatting a date per access line costs ~1% of a request.
  return pino({ level, base: { service: 'ballast' } }, dest);
}
