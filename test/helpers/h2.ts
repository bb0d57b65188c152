/** A small HTTP/2 client for tests: one request on a session, its head, body and trailers. */
import { connect, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';
import { once } from 'node:events';

export interface H2Response {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly trailers: IncomingHttpHeaders | undefined;
}

/** Opens a session and waits until it is connected (or fails). */
export async function h2connect(authority: string, options: SecureClientSessionOptions = {}): Promise<ClientHttp2Session> {
  const session = connect(authority, options);
  session.on('error', () => {});
  await Promise.race([once(session, 'connect'), once(session, 'error').then(([err]) => { throw err as Error; })]);
  return session;
}

export function h2request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Buffer): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': body === undefined ? 'GET' : 'POST', ...headers }, { endStream: body === undefined });
    let status = 0;
    let head: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      head = h;
      status = Number(h[':status']);
    });
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('close', () => {
      if (status === 0) reject(new Error(`stream closed without a response (code ${stream.rstCode})`));
      else resolve({ status, headers: head, body: Buffer.concat(chunks).toString(), trailers });
    });
    if (body !== undefined) stream.end(body);
  });
}
