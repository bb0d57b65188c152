/**
 * Why a TLS handshake failed, as one of a few fixed reasons: the label of `ballast_tls_handshake_errors_total`, which
 * must stay bounded whatever clients send. Handshake failures are counted, never logged per connection at info
 * level: scanners and clients with old stacks make many, and each is no news.
 */
export const HANDSHAKE_ERROR_REASONS = [
  'timeout',
  'protocol_version',
  'no_shared_cipher',
  'no_application_protocol',
  'no_client_certificate',
  'bad_client_certificate',
  'not_tls',
  'reset',
  'other',
] as const;

export type HandshakeErrorReason = (typeof HANDSHAKE_ERROR_REASONS)[number];

export function handshakeErrorReason(err: Error & { code?: string }): HandshakeErrorReason {
  const code = err.code ?? '';
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout';
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE') return 'reset';
  if (code === 'ERR_SSL_HTTP_REQUEST' || code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'ERR_SSL_RECORD_LENGTH_MISMATCH') return 'not_tls';
  if (code === 'ERR_SSL_UNSUPPORTED_PROTOCOL' || code.includes('PROTOCOL_VERSION') || code === 'ERR_SSL_VERSION_TOO_LOW') return 'protocol_version';
  if (code === 'ERR_SSL_NO_SHARED_CIPHER' || code === 'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM' || code === 'ERR_SSL_NO_SHARED_GROUPS') return 'no_shared_cipher';
  if (code.includes('NO_APPLICATION_PROTOCOL')) return 'no_application_protocol';
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE' || code.includes('CERTIFICATE_REQUIRED')) return 'no_client_certificate';
  if (code.includes('CERTIFICATE') || code.includes('UNKNOWN_CA') || code === 'ERR_SSL_CERTIFICATE_VERIFY_FAILED') return 'bad_client_certificate';
  return 'other';
}
