/**
 * The `ballast` command in cluster mode as a user runs it: `node dist/cli.js --config FILE` (built once per test run by test/helpers/build.ts),
 * a separate process tree (primary and workers), real signals, real sockets on 127.0.0.1. Logs are read from the
 * shared stdout, one JSON object per line; `worker` on a line says which worker wrote it.
 *
 * The workers accept connections themselves and the kernel spreads them, unevenly over a few (a burst of sixteen
 * can all land on one worker): a test that needs every worker to serve keeps sending until each has
 * (`getFromEveryWorker`), and one that needs to know which worker holds a request in flight asks /proc which worker
 * owns the socket it came from (`workerOwning`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../helpers/wait.js';

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
const dir = mkdtempSync(join(tmpdir(), 'ballast-cluster-'));
let files = 0;

export type LogLine = Record<string, unknown>;

export interface Cluster {
  readonly child: ChildProcess;
  readonly file: string;
  readonly port: number;
  readonly adminPort: number;
  /** Every JSON log line so far, primary's and workers'. */
  readonly lines: LogLine[];
  readonly output: () => string;
  url(path?: string): string;
  admin(path: string): string;
  /** Resolves with the first line (from index `from`) that `match` accepts. */
  waitForLine(match: (line: LogLine) => boolean, what: string, options?: { from?: number; timeoutMs?: number }): Promise<LogLine>;
  /** Worker pids named in the logs (current and past). */
  workerPids(): number[];
  /** SIGKILL the primary and every worker seen, if still there. */
  kill(): void;
}

const running: Cluster[] = [];

/** For afterEach: nothing a test started outlives it. */
export function killAll(): void {
  for (const c of running.splice(0)) c.kill();
}

export function writeConfig(text: string, name = `c${++files}.yaml`): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** `yaml(port, adminPort)` is the config; resolves once the primary logs `cluster ready`. */
export async function startCluster(yaml: (port: number, adminPort: number) => string): Promise<Cluster> {
  const [port, adminPort] = (await freePorts(2)) as [number, number];
  const file = writeConfig(yaml(port, adminPort));
  const child = spawn(process.execPath, [CLI, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  let output = '';
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString();
    output += chunk.toString();
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // a line two processes interleaved: ignored (tests never depend on one line)
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  // The primary names its workers' pids when it is ready and when it forks another; workers' own lines may lag.
  const pids = () => {
    const seen = new Set<number>();
    for (const l of lines) {
      if (l.msg === 'cluster ready' && Array.isArray(l.workerPids)) for (const p of l.workerPids) seen.add(p as number);
      if (l.msg === 'worker ready' && typeof l.workerPid === 'number') seen.add(l.workerPid);
      if (l.role !== 'primary' && typeof l.worker === 'number' && typeof l.pid === 'number') seen.add(l.pid);
    }
    return [...seen];
  };
  const cluster: Cluster = {
    child,
    file,
    port,
    adminPort,
    lines,
    output: () => output,
    url: (path = '/') => `http://127.0.0.1:${port}${path}`,
    admin: (path) => `http://127.0.0.1:${adminPort}${path}`,
    async waitForLine(match, what, options = {}) {
      let found: LogLine | undefined;
      await waitFor(
        () => {
          if (child.exitCode !== null) throw new Error(`ballast exited (${child.exitCode}) waiting for ${what}:\n${output}`);
          found = lines.slice(options.from ?? 0).find(match);
          return found !== undefined;
        },
        { timeoutMs: options.timeoutMs ?? 10_000, what },
      );
      return found!;
    },
    workerPids: pids,
    kill() {
      for (const pid of [child.pid, ...pids()]) {
        try {
          if (pid !== undefined) process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    },
  };
  running.push(cluster);
  await cluster.waitForLine((l) => l.msg === 'cluster ready', 'cluster ready', { timeoutMs: 15_000 });
  return cluster;
}

/** `n` distinct ports that were free a moment ago (held open together, so no two are the same). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  for (let i = 0; i < n; i++) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
  }
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

export async function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}

export interface Reply {
  readonly status: number;
  readonly body: string;
}

/** GET over a connection of its own (no agent), so that successive requests are new connections, each accepted anew. */
export function getFresh(url: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
  });
}

/**
 * `n` requests, `concurrency` at a time, each on a new connection. With `first` given, the i-th goes to `${url}${first + i}`
 * (a path of its own, to tell their access lines apart).
 */
export async function getMany(url: string, n: number, concurrency = 4, first?: number): Promise<Reply[]> {
  const replies: Reply[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        replies.push(await getFresh(first === undefined ? url : `${url}${first + i}`));
      }
    }),
  );
  return replies;
}

export async function getJson<T>(url: string): Promise<T> {
  const r = await getFresh(url);
  if (r.status !== 200) throw new Error(`${url}: ${r.status} ${r.body}`);
  return JSON.parse(r.body) as T;
}

/** The sum of every sample of `name` (exact name, any labels) whose labels include `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const got = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => got.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/** The samples of `name`: label text → value. */
export function metricSamples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m !== null && m[1] === name) out.set(m[2] ?? '', Number(m[3]));
  }
  return out;
}

export interface StatusDoc {
  upstreams: { name: string; servers: { address: string; state: string; active_requests: number }[] }[];
}

export async function serverState(cluster: Cluster, address: string): Promise<string | undefined> {
  const doc = await getJson<StatusDoc>(cluster.admin('/status'));
  return doc.upstreams.flatMap((u) => u.servers).find((s) => s.address === address)?.state;
}

/** Access-log lines of requests whose URL starts with `prefix` (give each phase of a test its own): `worker` says who served each. */
export function accessLines(cluster: Cluster, prefix = '/'): LogLine[] {
  return cluster.lines.filter((l) => l.kind === 'access' && typeof l.url === 'string' && l.url.startsWith(prefix));
}

export function originOf(body: string): string {
  return (JSON.parse(body) as { origin: string }).origin;
}

/**
 * Fresh-connection GETs of `${prefix}${i}`, `concurrency` at a time, until at least `n` were answered and each worker in
 * `workers` (ids, as `worker` in the logs) has served at least `each` of them by its access lines; at most `max`.
 * Resolves with the replies, once their access lines are all in.
 */
export async function getFromEveryWorker(
  cluster: Cluster,
  prefix: string,
  options: { n?: number; workers?: readonly number[]; each?: number; max?: number; concurrency?: number } = {},
): Promise<Reply[]> {
  const { n = 20, workers = [1, 2], each = 1, max = 400, concurrency = 4 } = options;
  const replies: Reply[] = [];
  const served = () => {
    const lines = accessLines(cluster, prefix);
    return workers.every((w) => lines.filter((l) => l.worker === w).length >= each);
  };
  while (replies.length < n || !served()) {
    if (replies.length >= max) throw new Error(`${prefix}: workers ${workers.join(', ')} did not each serve ${each} of ${max} requests`);
    const batch = Math.max(concurrency, n - replies.length);
    replies.push(...(await getMany(cluster.url(`${prefix}`), batch, concurrency, replies.length)));
    await waitFor(() => accessLines(cluster, prefix).length === replies.length, { what: `${replies.length} access lines for ${prefix}` });
  }
  return replies;
}

/** Worker pid → worker id, from the workers' own log lines. */
function workerIds(cluster: Cluster): Map<number, number> {
  const ids = new Map<number, number>();
  for (const l of cluster.lines) if (l.role !== 'primary' && typeof l.worker === 'number' && typeof l.pid === 'number') ids.set(l.pid, l.worker);
  return ids;
}

/**
 * The worker (its id) that owns a TCP socket bound to local port `port`: for an origin, the worker that sent it a
 * request, told by the request's `socket.remotePort`. Linux: the socket's inode from /proc/net/tcp, then the worker
 * with a file descriptor on that inode.
 */
export function workerOwning(cluster: Cluster, port: number): number | undefined {
  const inodes = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const local = f[1]?.split(':')[1];
    if (local !== undefined && parseInt(local, 16) === port && f[9] !== undefined && f[9] !== '0') inodes.add(f[9]);
  }
  for (const [pid, worker] of workerIds(cluster)) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone
    }
    for (const fd of fds) {
      try {
        const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
        if (inode !== undefined && inodes.has(inode)) return worker;
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}

/**
 * Requests opened one at a time with `open` until requests held at an origin have come from every worker in
 * `workers`. `heldFrom` is filled by the origin's handler with each held request's `socket.remotePort`; `arrived`
 * counts every request the origins received, held or not (by default, the held ones). Resolves with the requests
 * in flight, held or answered.
 */
export async function holdInEveryWorker(
  cluster: Cluster,
  open: () => Promise<Reply>,
  heldFrom: readonly number[],
  options: { workers?: readonly number[]; arrived?: () => number; max?: number } = {},
): Promise<Promise<Reply>[]> {
  const { workers = [1, 2], arrived = () => heldFrom.length, max = 40 } = options;
  const inflight: Promise<Reply>[] = [];
  const holders = new Set<number>();
  while (!workers.every((w) => holders.has(w))) {
    if (inflight.length >= max) throw new Error(`${max} requests held, none by worker ${workers.filter((w) => !holders.has(w)).join(', ')}`);
    const before = arrived();
    inflight.push(open());
    await waitFor(() => arrived() > before, { what: 'the request at an origin' });
    for (const port of heldFrom) {
      const worker = workerOwning(cluster, port);
      if (worker !== undefined) holders.add(worker);
    }
  }
  return inflight;
}

/** Whether this Node has `reusePort` for net listeners (22.12 and later in 22, 23.1 and later). */
export function nodeHasReusePort(): boolean {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}
