import { readFile } from 'node:fs/promises';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { TrainerError } from '@trainer/errors';

/**
 * TLS for the control and data channels (`--tls-cert/--tls-key/--tls-ca`, or TRAINER_TLS_*):
 * every process presents its certificate and verifies its peer's against the cluster CA, in
 * both directions (mutual TLS), under the token's HMAC handshake. Read and checked once, at
 * start, so a wrong path or a key that does not match fails before any connection.
 */
export interface TlsConfig {
  /** PEM: this process's certificate, its private key, and the CA every peer's certificate must chain to. */
  cert: string;
  key: string;
  ca: string;
}

export interface TlsPaths {
  cert: string;
  key: string;
  ca: string;
}

export async function loadTlsFiles(paths: TlsPaths): Promise<TlsConfig> {
  const missing = (['cert', 'key', 'ca'] as const).filter((k) => !paths[k]);
  if (missing.length) {
    throw new TrainerError('TRAINER_ERR_TLS_FILES', `TLS needs a certificate, its key and the CA; missing: ${missing.map((k) => `--tls-${k}`).join(', ')}`, {
      hint: 'pass all three of --tls-cert, --tls-key and --tls-ca (or TRAINER_TLS_CERT/KEY/CA), or none',
    });
  }
  const read = async (what: string, path: string) => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new TrainerError('TRAINER_ERR_TLS_FILES', `cannot read the TLS ${what} ${path}: ${(err as Error).message}`, { hint: 'check the path and its permissions', cause: err });
    }
  };
  const config = { cert: await read('certificate', paths.cert), key: await read('key', paths.key), ca: await read('CA certificate', paths.ca) };
  try {
    const cert = new X509Certificate(config.cert);
    new X509Certificate(config.ca);
    if (!cert.checkPrivateKey(createPrivateKey(config.key))) throw new Error(`the key ${paths.key} does not belong to the certificate ${paths.cert}`);
  } catch (err) {
    throw new TrainerError('TRAINER_ERR_TLS_FILES', `invalid TLS files: ${(err as Error).message}`, { hint: 'give PEM files: the certificate, its private key, and the CA certificate that signed it', cause: err });
  }
  return config;
}
