/**
 * Throw-away certificates for TLS tests, made with the `openssl` command: a certificate authority, and leaf
 * certificates it signs for the names asked (DNS names, or IP addresses). Written as PEM files in a temporary
 * directory, and returned as paths and as the PEM text.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isIP } from 'node:net';

export interface Pem {
  /** Paths of the PEM files. */
  readonly certPath: string;
  readonly keyPath: string;
  /** Their contents. */
  readonly cert: string;
  readonly key: string;
}

export interface CertificateAuthority extends Pem {
  readonly dir: string;
  /**
   * A certificate signed by this authority for `names` (the first is also the subject's CN), valid for `days`
   * (default 30). `clientAuth` makes one a client may present in mutual TLS; `file` names its files.
   */
  issue(names: readonly string[], options?: { days?: number; clientAuth?: boolean; file?: string }): Pem;
  /** Remove the directory and every file in it. */
  remove(): void;
}

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function pem(certPath: string, keyPath: string): Pem {
  return { certPath, keyPath, cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
}

/** A new certificate authority in a new temporary directory (EC P-256 keys: quick to make). */
export function createCertificateAuthority(name = 'Ballast Test CA'): CertificateAuthority {
  const dir = mkdtempSync(join(tmpdir(), 'ballast-certs-'));
  const keyPath = join(dir, 'ca-key.pem');
  const certPath = join(dir, 'ca.pem');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyPath], dir);
  openssl(['req', '-x509', '-new', '-key', keyPath, '-sha256', '-days', '30', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', certPath], dir);
  let serial = 1;
  return {
    dir,
    ...pem(certPath, keyPath),
    issue(names, options = {}) {
      const file = options.file ?? `leaf-${serial}`;
      const leafKey = join(dir, `${file}-key.pem`);
      const leafCsr = join(dir, `${file}.csr`);
      const leafCert = join(dir, `${file}.pem`);
      const ext = join(dir, `${file}.ext`);
      const san = names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
      writeFileSync(ext, [
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        `extendedKeyUsage=${options.clientAuth ? 'clientAuth' : 'serverAuth'}`,
        `subjectAltName=${san}`,
      ].join('\n'));
      openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', leafKey], dir);
      openssl(['req', '-new', '-key', leafKey, '-subj', `/CN=${names[0] ?? 'ballast'}`, '-out', leafCsr], dir);
      openssl(['x509', '-req', '-in', leafCsr, '-CA', certPath, '-CAkey', keyPath, '-set_serial', String(1000 + serial++),
        '-sha256', '-days', String(options.days ?? 30), '-extfile', ext, '-out', leafCert], dir);
      return pem(leafCert, leafKey);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
