/**
 * Structured JSON logs on stdout (pino). The destination is asynchronous (sonic-boom batches lines while a write is
 * in flight), so a line costs the data path a serialisation, not a blocking write; flushed on shutdown. Access
 * lines go through src/access-log.ts, which batches them further.
 *
 * On a terminal the command line shows the same lines pretty-printed instead (`prettyDestination`): pino-pretty
 * formats them in this process, as they are written. A terminal is someone watching, not a production log pipe, so
 * the formatting's cost does not matter there, and unlike a worker-thread transport nothing is lost when the process
 * exits at once (a second Ctrl-C). Anywhere else (a pipe, a file, a container's log) the lines stay JSON.
 */
import pino, { type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';

export type { Logger };

/** `auto`: pretty when stdout is a terminal, JSON otherwise. */
export type LogFormat = 'auto' | 'json' | 'pretty';
export const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  // 64 KiB writes (sonic-boom's default is 16 KiB): each write costs a hop to the thread pool, and the access log
  // hands over batches of up to this size.
  const dest = destination ?? pino.destination({ dest: 1, sync: false, maxWrite: 64 * 1024 });
  // Epoch milliseconds (pino's default), not an ISO string: formatting a date per access line costs ~1% of a request.
  return pino({ level, base: { service: 'ballast' } }, dest);
}

/** The logger the command line runs with: `format` decides JSON or pretty lines (auto: pretty on a terminal). */
export function createCliLogger(level: string, format: LogFormat = 'auto'): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  return createLogger(level, pretty ? prettyDestination() : undefined);
}

/**
 * A destination that prints pino's JSON lines as pino-pretty does (`14:02:11.532 INFO: listening {"listener":"web",…}`),
 * one line each. A start-up summary line is its message alone; an access line becomes one short sentence (`web GET /hello → 200 in 1.2 ms, demo 127.0.0.1:9001`).
 * Colours follow the terminal and NO_COLOR / FORCE_COLOR.
 */
export function prettyDestination(out: NodeJS.WritableStream = process.stdout): pino.DestinationStream {
  const pretty = prettyFactory({ translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service', singleLine: true });
  let partial = '';
  return {
    write(chunk: string): void {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      let text = '';
      for (const line of lines) {
        if (line === '') continue;
        let record: Record<string, unknown>;
        try {
          record = JSON.parse(line) as Record<string, unknown>;
        } catch {
          text += `${line}\n`;
          continue;
        }
        if (record.kind === 'access') record = accessSentence(record);
        // A start-up summary line's message says all its fields say (startup-summary.ts).
        else if (record.kind === 'startup') record = { level: record.level, time: record.time, msg: record.msg };
        text += pretty(record);
      }
      if (text !== '') out.write(text);
    },
  };
}

/** An access record as one message: what was asked, what was answered, how long it took, who answered. */
function accessSentence(r: Record<string, unknown>): Record<string, unknown> {
  const str = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : '');
  const parts: string[] = [str(r.listener)];
  if (r.protocol === 'tcp') {
    parts.push(`tcp ${str(r.client)}${r.sni === undefined ? '' : ` sni ${str(r.sni)}`} ${str(r.end)}`, `${str(r.bytesIn)} B in, ${str(r.bytesOut)} B out, ${str(r.durationMs)} ms`);
  } else {
    parts.push(`${str(r.method)} ${str(r.url)}${r.upgrade === undefined ? '' : ` (${str(r.upgrade)})`} → ${str(r.status)} in ${str(r.durationMs)} ms`);
  }
  if (r.upstream !== undefined && r.upstream !== '') {
    const tries = typeof r.attempts === 'number' && r.attempts > 1 ? ` after ${r.attempts} tries` : '';
    parts.push(`${str(r.upstream)}${r.server === undefined ? '' : ` ${str(r.server)}`}${tries}`);
  }
  if (r.detail !== undefined) parts.push(str(r.detail));
  return { level: r.level, time: r.time, msg: parts.join(', ') };
}
