import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Why test certificates cannot be made here (no openssl), or null. */
export function opensslUnavailableReason(): string | null {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'no openssl to make test certificates';
  }
}

/** A CA and one certificate it signed (ed25519) in `dir`: returns the three PEM file paths. */
export function makeCertificates(dir: string, name: string): { cert: string; key: string; ca: string } {
  const run = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  const p = (f: string) => join(dir, `${name}-${f}`);
  run('req', '-x509', '-newkey', 'ed25519', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', `/CN=${name} test CA`);
  run('req', '-newkey', 'ed25519', '-nodes', '-keyout', p('node.key'), '-out', p('node.csr'), '-subj', `/CN=${name} node`);
  run('x509', '-req', '-in', p('node.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('node.pem'), '-days', '2');
  return { cert: p('node.pem'), key: p('node.key'), ca: p('ca.pem') };
}
