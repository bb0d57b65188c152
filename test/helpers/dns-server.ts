/**
 * A small authoritative DNS server on UDP 127.0.0.1 for the discovery tests (RFC 1035 wire format, A / AAAA / SRV),
 * whose zone and behaviour can be changed on cue: answer, SERVFAIL, stay silent (a resolver that times out), or stop
 * listening (a resolver that is down). Records are answered in the order they were set, so a test can serve the
 * same set in different orders. Names are case-insensitive; a name with no records at all is NXDOMAIN, a name with
 * records of other types only is NODATA (NOERROR, no answer).
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { ipv4ToBytes, ipv6ToBytes } from '../../src/util/ip-address.js';
import { freePort } from './ports.js';

export interface AddressRecord {
  readonly address: string;
  readonly ttl?: number;
}

export interface SrvRecord {
  readonly priority?: number;
  readonly weight?: number;
  readonly port: number;
  readonly target: string;
  readonly ttl?: number;
}

interface Records {
  A?: readonly AddressRecord[];
  AAAA?: readonly AddressRecord[];
  SRV?: readonly SrvRecord[];
}

export type DnsMode = 'answer' | 'servfail' | 'silent';

export interface DnsServer {
  /** "127.0.0.1:PORT", as `resolvers:` takes it. */
  readonly address: string;
  readonly port: number;
  mode: DnsMode;
  /** Rotate each answer's records by one per query, as round-robin DNS servers do (the set stays the same). */
  rotate: boolean;
  /** Questions received, as "TYPE name". */
  readonly queries: string[];
  set(name: string, records: Records): void;
  remove(name: string): void;
  /** Stop listening (queries now meet a closed port), and listen again on the same port. */
  stop(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

const TYPES = { A: 1, AAAA: 28, SRV: 33 } as const;
const TYPE_NAMES = new Map<number, keyof typeof TYPES>(Object.entries(TYPES).map(([k, v]) => [v, k as keyof typeof TYPES]));
const DEFAULT_TTL = 300;

export async function startDnsServer(): Promise<DnsServer> {
  const zone = new Map<string, Records>();
  const queries: string[] = [];
  let socket: Socket;
  let port = 0;
  const server: DnsServer = {
    get address() {
      return `127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    mode: 'answer',
    rotate: false,
    queries,
    set: (name, records) => void zone.set(name.toLowerCase(), records),
    remove: (name) => void zone.delete(name.toLowerCase()),
    stop: () => new Promise<void>((resolve) => socket.close(() => resolve())),
    restart: () => listen(port),
    close: async () => {
      try {
        await server.stop();
      } catch {
        // already stopped
      }
    },
  };

  const onMessage = (query: Buffer, from: RemoteInfo): void => {
    const parsed = parseQuestion(query);
    if (parsed === undefined) return;
    const typeName = TYPE_NAMES.get(parsed.type) ?? String(parsed.type);
    queries.push(`${typeName} ${parsed.name}`);
    if (server.mode === 'silent') return;
    let rcode = 0;
    let answers: Buffer[] = [];
    if (server.mode === 'servfail') rcode = 2;
    else {
      const records = zone.get(parsed.name.toLowerCase());
      if (records === undefined) rcode = 3;
      else answers = encodeAnswers(records, TYPE_NAMES.get(parsed.type));
      if (server.rotate && answers.length > 1) answers = [...answers.slice(queries.length % answers.length), ...answers.slice(0, queries.length % answers.length)];
    }
    const header = Buffer.alloc(12);
    header.writeUInt16BE(query.readUInt16BE(0), 0);
    // QR, AA, RD copied, RA; the rcode.
    header.writeUInt16BE(0x8000 | 0x0400 | (query.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    socket.send(Buffer.concat([header, parsed.question, ...answers]), from.port, from.address);
  };

  const listen = (at: number) =>
    new Promise<void>((resolve, reject) => {
      socket = createSocket('udp4');
      socket.on('message', onMessage);
      socket.once('error', reject);
      socket.bind(at, '127.0.0.1', () => {
        socket.off('error', reject);
        socket.on('error', () => {});
        port = socket.address().port;
        resolve();
      });
    });
  // Not port 0: a stopped server's port must still be free when the test restarts it (see ports.ts).
  await listen(await freePort());
  return server;
}

/** The question of a query: its name, type and raw bytes (echoed in the answer). */
function parseQuestion(msg: Buffer): { name: string; type: number; question: Buffer } | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let at = 12;
  while (at < msg.length) {
    const len = msg[at]!;
    at++;
    if (len === 0) break;
    labels.push(msg.toString('latin1', at, at + len));
    at += len;
  }
  if (at + 4 > msg.length) return undefined;
  const type = msg.readUInt16BE(at);
  return { name: labels.join('.'), type, question: msg.subarray(12, at + 4) };
}

function encodeAnswers(records: Records, type: keyof typeof TYPES | undefined): Buffer[] {
  if (type === 'A') return (records.A ?? []).map((r) => answer(TYPES.A, r.ttl, ipv4ToBytes(r.address)));
  if (type === 'AAAA') return (records.AAAA ?? []).map((r) => answer(TYPES.AAAA, r.ttl, ipv6ToBytes(r.address)));
  if (type === 'SRV') {
    return (records.SRV ?? []).map((r) => {
      const fixed = Buffer.alloc(6);
      fixed.writeUInt16BE(r.priority ?? 0, 0);
      fixed.writeUInt16BE(r.weight ?? 1, 2);
      fixed.writeUInt16BE(r.port, 4);
      return answer(TYPES.SRV, r.ttl, Buffer.concat([fixed, encodeName(r.target)]));
    });
  }
  return [];
}

/** One resource record for the question's name (a pointer to offset 12), class IN. */
function answer(type: number, ttl: number | undefined, rdata: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt32BE(ttl ?? DEFAULT_TTL, 6);
  head.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([head, rdata]);
}

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter((p) => p !== '');
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])), Buffer.from([0])]);
}
