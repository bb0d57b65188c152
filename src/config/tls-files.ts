/**
 * PEM files a config names (certificates, private keys, CA bundles), read and checked while the config is validated:
 * a missing, unreadable or malformed file is an error at its key, with the file's path, line and column, at start-up
 * and at reload alike, so a reload with a bad certificate keeps the running config and the certificate it serves.
 * Paths are relative to the working directory, as HAProxy and Envoy read them.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { z } from 'zod';

export interface PemFile {
  readonly path: string;
  /** The file's text, as read when the config was validated. */
  readonly pem: string;
}

type PemKind = 'certificate' | 'key' | 'ca';

const WHAT: Record<PemKind, string> = {
  certificate: 'a PEM certificate (chain)',
  key: 'a PEM private key',
  ca: 'a PEM bundle of CA certificates',
};

function check(kind: PemKind, pem: string): void {
  if (kind === 'key') createPrivateKey(pem);
  else new X509Certificate(pem);
}

/** A path to a PEM file of this kind, read now; the value is the path and the text. */
export const pemFile = (kind: PemKind) =>
  z.string({ error: `expected the path of ${WHAT[kind]}` }).min(1, `expected the path of ${WHAT[kind]}`).transform((path, ctx): PemFile => {
    let pem: string;
    try {
      pem = readFileSync(path, 'utf8');
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      return z.NEVER;
    }
    try {
      check(kind, pem);
    } catch {
      ctx.addIssue({ code: 'custom', message: `${path} is not ${WHAT[kind]}` });
      return z.NEVER;
    }
    return { path, pem };
  });

/** A certificate and its private key, which must belong together (checked as OpenSSL would, by loading both). */
export const certificatePair = z.strictObject({ cert: pemFile('certificate'), key: pemFile('key') }).superRefine((pair, ctx) => {
  try {
    createSecureContext({ cert: pair.cert.pem, key: pair.key.pem });
  } catch (err) {
    ctx.addIssue({ code: 'custom', path: ['key'], message: `${pair.key.path} does not go with ${pair.cert.path}: ${(err as Error).message}` });
  }
});

export type CertificatePair = z.output<typeof certificatePair>;
