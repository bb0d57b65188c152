/**
 * The logger of a cluster process. The primary and every worker write JSON lines to one shared stdout, so each
 * write must hold whole lines and be atomic: sonic-boom only ever writes whole lines, and capped at PIPE_BUF
 * (4 KiB on Linux) a write to a pipe or FIFO (a terminal pipeline, `docker logs`) cannot be interleaved with
 * another process's (POSIX write(2)). A regular file is written whole by each write whatever its size (Linux
 * serialises writes that share a file offset), so there the cap is the single process's 64 KiB: under access
 * logging the 4 KiB cap cost a worker 16 times the writes, each a hop to the thread pool and back, which measured
 * about 0.1 write and 0.3 thread wake-up per request more than one process makes.
 */
import { fstatSync } from 'node:fs';
import pino from 'pino';
import { createLogger, type Logger } from '../log.js';

const PIPE_BUF = 4096;
/** What a single process writes at most at once (src/log.ts). */
const FILE_MAX_WRITE = 64 * 1024;

export function clusterLogger(level: string, bindings: Record<string, unknown>): Logger {
  return createLogger(level, pino.destination({ dest: 1, sync: false, maxWrite: stdoutMaxWrite() })).child(bindings);
}

/** The largest write to stdout that no other process's write can split: PIPE_BUF unless stdout is a regular file. */
function stdoutMaxWrite(): number {
  try {
    return fstatSync(1).isFile() ? FILE_MAX_WRITE : PIPE_BUF;
  } catch {
    return PIPE_BUF;
  }
}
