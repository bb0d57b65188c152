/**
 * #15: TLS on tcp listeners (terminate, then relay clear text), and certificates re-read on SIGHUP by the CLI: new
 * handshakes get the new certificate while an open HTTP/2 session keeps working, and a bad file at reload keeps the
 * old one and says why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { connect as tlsConnect } from 'node:tls';
import { createCertificateAuthority, type CertificateAuthority } from '../helpers/certs.js';
import { startOrigin, type Origin } from '../helpers/origin.js';
import { freePort, startBallast } from '../helpers/ballast.js';
import { exitCode, spawnCli } from '../helpers/cli.js';
import { h2connect, h2request } from '../helpers/h2.js';
import { waitFor } from '../helpers/wait.js';
import { startTcpOrigin } from '../tcp/helpers.js';

let ca: CertificateAuthority;

beforeAll(() => {
  ca = createCertificateAuthority();
});
afterAll(() => ca.remove());

/** The serial number of the certificate a new TLS connection is shown. */
async function servedSerial(port: number, servername: string): Promise<string> {
  const socket = tlsConnect({ port, host: '127.0.0.1', ca: ca.cert, servername });
  await once(socket, 'secureConnect');
  const serial = socket.getPeerCertificate().serialNumber;
  socket.destroy();
  return serial;
}

describe('TLS on a tcp listener', () => {
  it('terminates TLS and relays the clear text both ways', async () => {
    const leaf = ca.issue(['db.test']);
    const origin = await startTcpOrigin('db');
    const b = await startBallast(`
admin: { listen: 127.0.0.1:0 }
listeners:
  - name: db
    protocol: tcp
    listen: 127.0.0.1:0
    upstream: pool
    tls: { certificates: [ { cert: ${leaf.certPath}, key: ${leaf.keyPath} } ] }
upstreams: [ { name: pool, servers: [ { address: ${origin.address} } ] } ]
`);
    try {
      const socket = tlsConnect({ port: b.port, host: '127.0.0.1', ca: ca.cert, servername: 'db.test' });
      await once(socket, 'secureConnect');
      socket.write('ping over tls');
      const [echo] = (await once(socket, 'data')) as [Buffer];
      expect(echo.toString()).toBe('ping over tls');
      socket.end();
      await once(socket, 'close');
      const text = await (await fetch(`http://127.0.0.1:${b.adminPort}/metrics`)).text();
      expect(text).toMatch(/ballast_tls_handshakes_total\{listener="db",version="TLSv1.3",protocol="tcp"\} 1/);
    } finally {
      await b.stop();
      await origin.close();
    }
  });

  it('refuses accept_proxy_protocol beside tls at validation', async () => {
    const leaf = ca.issue(['db.test']);
    await expect(startBallast(`
listeners:
  - { name: db, protocol: tcp, listen: 127.0.0.1:0, upstream: pool, accept_proxy_protocol: true, tls: { certificates: [ { cert: ${leaf.certPath}, key: ${leaf.keyPath} } ] } }
upstreams: [ { name: pool, servers: [ { address: 127.0.0.1:1 } ] } ]
`)).rejects.toThrow(/listeners\[0\]\.accept_proxy_protocol: a tcp listener that terminates TLS cannot accept the PROXY protocol/);
  });
});

describe('certificates re-read on SIGHUP', () => {
  let dir: string;
  let origin: Origin;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ballast-tls-reload-'));
    origin = await startOrigin('o');
  });
  afterAll(async () => {
    await origin.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('new handshakes get the new certificate, an open HTTP/2 session keeps working, a bad file keeps the old one', async () => {
    const first = ca.issue(['app.test'], { file: 'first' });
    const second = ca.issue(['app.test'], { file: 'second' });
    const cert = join(dir, 'app.pem');
    const key = join(dir, 'app-key.pem');
    copyFileSync(first.certPath, cert);
    copyFileSync(first.keyPath, key);
    const port = await freePort();
    const config = join(dir, 'ballast.yaml');
    writeFileSync(config, `
admin: { listen: 127.0.0.1:0 }
logging: { access_log: false }
listeners:
  - name: web
    listen: 127.0.0.1:${port}
    tls: { certificates: [ { cert: ${cert}, key: ${key} } ] }
    routes: [ { upstream: pool } ]
upstreams: [ { name: pool, servers: [ { address: ${origin.address} } ] } ]
`);
    const child = spawnCli(['--config', config, '--log-format', 'json']);
    try {
      await waitFor(() => child.out().includes('"listening"') || child.out().includes('listening'), { what: 'listening' });
      const firstSerial = await servedSerial(port, 'app.test');
      const session = await h2connect(`https://127.0.0.1:${port}`, { ca: ca.cert, servername: 'app.test' });
      expect((await h2request(session, { ':path': '/before', ':authority': 'app.test' })).status).toBe(200);

      copyFileSync(second.certPath, cert);
      copyFileSync(second.keyPath, key);
      child.kill('SIGHUP');
      await waitFor(async () => (await servedSerial(port, 'app.test')) !== firstSerial, { what: 'the new certificate served' });
      // The session made before the reload goes on with the certificate it was made with.
      expect((await h2request(session, { ':path': '/after', ':authority': 'app.test' })).status).toBe(200);
      const secondSerial = await servedSerial(port, 'app.test');

      // A broken key file: the reload is refused, with the path, and the certificate served is unchanged.
      writeFileSync(key, 'not a key\n');
      child.kill('SIGHUP');
      await waitFor(() => child.out().includes('reload refused'), { what: 'reload refused' });
      expect(child.out()).toContain(`listeners[0].tls.certificates[0].key: ${key}: no PEM private key in it`);
      expect(await servedSerial(port, 'app.test')).toBe(secondSerial);
      expect((await h2request(session, { ':path': '/still', ':authority': 'app.test' })).status).toBe(200);
      session.close();
    } finally {
      child.kill('SIGTERM');
      await exitCode(child);
    }
  });
});
