/**
 * The throw-away certificate of `ballast demo --tls`: self-signed for localhost and 127.0.0.1, valid a week, written
 * to a new temporary directory (the config names certificate files) that the demo removes when it stops. Made in
 * process (selfsigned), so the demo needs no openssl command on the machine.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';

export interface DemoCertificate {
  readonly cert: string;
  readonly key: string;
  remove(): void;
}

export async function makeDemoCertificate(): Promise<DemoCertificate> {
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    notAfterDate: new Date(Date.now() + 7 * 86_400_000),
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), 'ballast-demo-tls-'));
  const cert = join(dir, 'localhost.pem');
  const key = join(dir, 'localhost-key.pem');
  writeFileSync(cert, pems.cert);
  writeFileSync(key, pems.private, { mode: 0o600 });
  return { cert, key, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
