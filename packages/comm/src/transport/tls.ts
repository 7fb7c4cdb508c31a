import type { ConnectionOptions, TlsOptions as NodeTlsOptions } from 'node:tls';

/**
 * Optional TLS for channels (`wss`), for networks that are not trusted: PEM certificate, its
 * key, and the CA every peer's certificate must chain to. Both ends present a certificate and
 * verify the other's (mutual TLS); the token's HMAC handshake runs inside, as always.
 *
 * Peers are verified by the CA, not by host name: workers dial addresses learned at rendezvous,
 * and one certificate per host need not list them. Issue the CA for this cluster only.
 */
export interface TlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer;
}

export function serverTlsOptions(t: TlsOptions): NodeTlsOptions {
  return { cert: t.cert, key: t.key, ca: t.ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' };
}

export function clientTlsOptions(t: TlsOptions): ConnectionOptions {
  return { cert: t.cert, key: t.key, ca: t.ca, rejectUnauthorized: true, checkServerIdentity: () => undefined, minVersion: 'TLSv1.2' };
}
