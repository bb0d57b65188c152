/** Steady client traffic through Ballast for the health tests, with every response recorded and timed. */
import { Agent, request } from 'undici';
import type { TestBallast } from '../helpers/ballast.js';
import { sleep } from '../helpers/wait.js';

export interface Sample {
  /** performance.now() when the request was sent. */
  readonly sentAt: number;
  /** performance.now() when the response (or error) arrived. */
  readonly at: number;
  readonly ms: number;
  readonly status: number;
  /** The origin that answered (x-origin), if one did. */
  readonly origin: string | undefined;
  readonly retryAfter: string | undefined;
}

export interface Traffic {
  readonly samples: Sample[];
  /** Samples that arrived in [from, to). */
  between(from: number, to?: number): Sample[];
  /**
   * Samples of the requests sent in [from, to), answered so far: what the proxy decided for requests it received
   * after a known change, unlike `between`, which includes requests already in flight at `from`.
   */
  sentBetween(from: number, to?: number): Sample[];
  stop(): Promise<void>;
}

const agent = new Agent({ connections: 32, keepAliveTimeout: 1000 });

/** One request through Ballast, never throwing: a transport error is recorded as status 0. */
export async function send(b: TestBallast, path = '/'): Promise<Sample> {
  const started = performance.now();
  try {
    const res = await request(b.url(path), { dispatcher: agent });
    await res.body.dump();
    const origin = res.headers['x-origin'];
    const retryAfter = res.headers['retry-after'];
    return {
      sentAt: started,
      at: performance.now(),
      ms: performance.now() - started,
      status: res.statusCode,
      origin: typeof origin === 'string' ? origin : undefined,
      retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
    };
  } catch {
    return { sentAt: started, at: performance.now(), ms: performance.now() - started, status: 0, origin: undefined, retryAfter: undefined };
  }
}

/** `concurrency` loops, each sending one request after another, with `pauseMs` between them. */
export function startTraffic(b: TestBallast, options: { concurrency?: number; pauseMs?: number } = {}): Traffic {
  const { concurrency = 2, pauseMs = 2 } = options;
  const samples: Sample[] = [];
  let running = true;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      samples.push(await send(b));
      if (pauseMs > 0) await sleep(pauseMs);
    }
  });
  return {
    samples,
    between: (from, to = Infinity) => samples.filter((s) => s.at >= from && s.at < to),
    sentBetween: (from, to = Infinity) => samples.filter((s) => s.sentAt >= from && s.sentAt < to),
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** How many samples each origin answered (undefined: answered by Ballast itself). */
export function byOrigin(samples: readonly Sample[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    const k = s.origin ?? `ballast-${s.status}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** Log lines with this message. */
export function logsWith(b: TestBallast, msg: string): Record<string, unknown>[] {
  return b.logs.filter((l) => l.msg === msg);
}

/** Prints a measured timing when BALLAST_TIMINGS is set (the numbers quoted in the health issue's closing note). */
export function report(label: string, ms: number): void {
  if (process.env.BALLAST_TIMINGS) process.stdout.write(`[timing] ${label}: ${Math.round(ms)} ms\n`);
}
