/** #15: `ballast demo --tls` serves HTTP/2 and HTTP/1.1 over TLS with a throw-away certificate it makes itself. */
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { startDemo } from '../../src/demo.js';
import { freePort } from '../helpers/ballast.js';
import { h2connect, h2request } from '../helpers/h2.js';

describe('ballast demo --tls', () => {
  it('serves HTTP/2 over TLS beside the clear-text listener, and removes its certificate when it stops', async () => {
    const said: string[] = [];
    const demo = await startDemo({ tls: true, env: { BALLAST_DEMO_PORT: String(await freePort()) }, say: (l) => said.push(l) });
    const tlsPort = demo.ports.tls!;
    const listener = demo.ballast.config.listeners.find((l) => l.name === 'web-tls')!;
    const certPath = listener.protocol === 'http' ? listener.tls!.certificates[0]!.cert.path : '';
    try {
      expect(existsSync(certPath)).toBe(true);
      // A self-signed certificate: the client is told to trust it, as `curl -k` is.
      const session = await h2connect(`https://localhost:${tlsPort}`, { rejectUnauthorized: false });
      expect(session.alpnProtocol).toBe('h2');
      const res = await h2request(session, { ':path': '/hello' });
      session.close();
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ url: '/hello' });
      const plain = await fetch(`http://127.0.0.1:${demo.ports.proxy}/hello`);
      expect(plain.status).toBe(200);
    } finally {
      await demo.stop();
    }
    expect(existsSync(certPath)).toBe(false);
  });
});
