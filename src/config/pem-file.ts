/**
 * PEM files named in the config (a CA bundle, a certificate, a private key): read and checked when the config is
 * loaded, so a missing, unreadable or malformed file is a config error at its key (`upstreams[0].tls.ca: cannot read
 * certs/ca.pem: no such file or directory`), refused at start-up and, on a reload, leaving the running config in
 * place. The loaded config carries the file's text, so every process of a cluster uses what the primary read, and a
 * reload compares contents, not names.
 *
 * A relative path is relative to Ballast's working directory, as in Envoy, Caddy and HAProxy without `crt-base`.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export interface PemFile {
  /** As written in the config, for messages. */
  readonly path: string;
  /** The file's text. */
  readonly pem: string;
}

export type PemKind = 'certificates' | 'private key';

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

/** Why a file's text is not what its key needs; undefined when it is. */
function pemProblem(text: string, kind: PemKind): string | undefined {
  const blocks = [...text.matchAll(PEM_BLOCK)];
  if (kind === 'private key') {
    if (!blocks.some((b) => b[1]!.endsWith('PRIVATE KEY'))) return 'no PEM private key in it';
    try {
      createPrivateKey(text);
    } catch (err) {
      return `not a usable private key (${(err as Error).message})`;
    }
    return undefined;
  }
  const certificates = blocks.filter((b) => b[1] === 'CERTIFICATE');
  if (certificates.length === 0) return 'no PEM certificate in it';
  for (const [i, block] of certificates.entries()) {
    try {
      new X509Certificate(block[0]);
    } catch (err) {
      return `certificate ${i + 1} cannot be parsed (${(err as Error).message})`;
    }
  }
  return undefined;
}

/** Why a file could not be read, without the path Node repeats (`no such file or directory`). */
function readProblem(err: unknown): string {
  const { code, message } = err as NodeJS.ErrnoException;
  if (code === 'EISDIR') return 'it is a directory';
  return /^[A-Z]+: (.*?), \w+ '.*'$/s.exec(message)?.[1] ?? message;
}

/** A path to a PEM file holding `kind`, read and checked now; its output is the path and the text. */
export function pemFile(kind: PemKind) {
  return z.string({ error: `expected the path of a PEM file (${kind})` }).min(1, `expected the path of a PEM file (${kind})`).transform((path, ctx): PemFile => {
    let pem: string;
    try {
      pem = readFileSync(path, 'utf8');
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `cannot read ${path}: ${readProblem(err)}` });
      return z.NEVER;
    }
    const problem = pemProblem(pem, kind);
    if (problem !== undefined) {
      ctx.addIssue({ code: 'custom', message: `${path}: ${problem}` });
      return z.NEVER;
    }
    return { path, pem };
  });
}

/** Whether a private key belongs to the first certificate of a chain (both already checked by `pemFile`). */
export function keyMatchesCertificate(cert: PemFile, key: PemFile): boolean {
  const first = cert.pem.match(PEM_BLOCK)?.find((b) => b.startsWith('-----BEGIN CERTIFICATE-----'));
  return first !== undefined && new X509Certificate(first).checkPrivateKey(createPrivateKey(key.pem));
}

/** A certificate (chain) and its private key, which must belong together: a listener's certificate. */
export const certificatePair = z.strictObject({ cert: pemFile('certificates'), key: pemFile('private key') }).superRefine((pair, ctx) => {
  if (!keyMatchesCertificate(pair.cert, pair.key)) {
    ctx.addIssue({ code: 'custom', path: ['key'], message: `${pair.key.path} does not go with the certificate in ${pair.cert.path}` });
  }
});
