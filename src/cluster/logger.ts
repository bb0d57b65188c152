/**
 * The logger of a cluster process. The primary and every worker write JSON lines to one shared stdout, so each
 * write must hold whole lines and be atomic: sonic-boom only ever writes whole lines, and capped at PIPE_BUF
 * (4 KiB on Linux) a write to a pipe or FIFO (a terminal pipeline, `docker logs`) cannot be interleaved with
 * another process's (POSIX write(2)); a regular file is appended whole by each write. The cost is a write per
 * 4 KiB instead of per 16 KiB (sonic-boom's default) under heavy access logging.
 */
import pino from 'pino';
import { createLogger, type Logger } from '../log.js';

const PIPE_BUF = 4096;

export function clusterLogger(level: string, bindings: Record<string, unknown>): Logger {
  return createLogger(level, pino.destination({ dest: 1, sync: false, maxWrite: PIPE_BUF })).child(bindings);
}
