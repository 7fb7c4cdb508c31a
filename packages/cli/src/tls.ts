import { loadTlsFiles, type TlsConfig } from '@trainer/launcher';
import { tlsPaths, type TlsCliOptions } from './cluster-options.js';

/** `{ tls }` for a channel from the TLS options or TRAINER_TLS_*, or `{}` without TLS. */
export async function channelTls(o: TlsCliOptions): Promise<{ tls?: TlsConfig }> {
  const paths = tlsPaths(o);
  return paths ? { tls: await loadTlsFiles(paths) } : {};
}

/** The TLS options as environment for processes this one starts (workers, agents). */
export function tlsEnv(o: TlsCliOptions): Record<string, string> {
  const paths = tlsPaths(o);
  return paths ? { TRAINER_TLS_CERT: paths.cert, TRAINER_TLS_KEY: paths.key, TRAINER_TLS_CA: paths.ca } : {};
}
