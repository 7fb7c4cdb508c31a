import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { TrainerError } from '@trainer/errors';

/**
 * The cluster token: a shared secret every process must prove (by HMAC, never by sending it)
 * before a connection is admitted. It travels only through the environment (TRAINER_TOKEN) or a
 * file (--token-file), never on a command line (visible in `ps`) and never in logs.
 */
export const TOKEN_ENV = 'TRAINER_TOKEN';
const MIN_TOKEN_LENGTH = 16;

export function generateClusterToken(): string {
  return randomBytes(32).toString('base64url');
}

export async function resolveClusterToken(opts: { tokenFile?: string; env?: NodeJS.ProcessEnv; required: boolean }): Promise<string | undefined> {
  const env = opts.env ?? process.env;
  let token: string | undefined;
  let source = '';
  if (opts.tokenFile) {
    try {
      token = (await readFile(opts.tokenFile, 'utf8')).trim();
      source = `file ${opts.tokenFile}`;
    } catch (err) {
      throw new TrainerError('TRAINER_ERR_TOKEN_UNREADABLE', `cannot read the cluster token file ${opts.tokenFile}`, {
        cause: err,
        hint: 'pass --token-file with a readable file holding the token, or set TRAINER_TOKEN',
      });
    }
  } else if (env[TOKEN_ENV]) {
    token = env[TOKEN_ENV]!.trim();
    source = `environment variable ${TOKEN_ENV}`;
  }
  if (token === undefined) {
    if (!opts.required) return undefined;
    throw new TrainerError('TRAINER_ERR_TOKEN_MISSING', 'no cluster token was given', {
      hint: `set ${TOKEN_ENV} in the environment or pass --token-file FILE (the same token on every host)`,
    });
  }
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new TrainerError('TRAINER_ERR_TOKEN_WEAK', `the cluster token from ${source} has ${token.length} characters; at least ${MIN_TOKEN_LENGTH} are required`, {
      hint: 'generate one with: node -e "console.log(require(\'crypto\').randomBytes(32).toString(\'base64url\'))"',
    });
  }
  return token;
}

/** Writes a new token to a file only its owner can read (for a standalone coordinator). */
export async function writeTokenFile(path: string, token: string): Promise<void> {
  await writeFile(path, token + '\n', { mode: 0o600 });
}
