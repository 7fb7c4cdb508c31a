import { pino, type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

export type { Logger } from 'pino';

/**
 * Logs are pino JSON lines, one object per line; on a terminal they are pretty-printed.
 * Workers always write JSON to stdout; the launcher reads each worker's lines, adds its rank,
 * and prints them pretty on a TTY or as JSON lines (with `rank`) otherwise.
 */
export interface LoggerOptions {
  /** pino level: trace, debug, info, warn, error, fatal, silent. */
  level?: string;
  /** Pretty-print for humans; default: when stdout is a TTY and TRAINER_LOG_FORMAT is not 'json'. */
  pretty?: boolean;
  /** Fields on every line (role, rank, host). */
  base?: Record<string, unknown>;
  /** Where lines go (default stdout; stderr keeps stdout for a command's own output). */
  to?: 'stdout' | 'stderr';
}

export function wantsPrettyLogs(): boolean {
  const format = process.env.TRAINER_LOG_FORMAT;
  if (format === 'json') return false;
  if (format === 'pretty') return true;
  return Boolean(process.stdout.isTTY);
}

const REDACT = ['token', '*.token', 'clusterToken', '*.clusterToken'];

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? process.env.TRAINER_LOG_LEVEL ?? 'info';
  const base = { ...opts.base };
  const pretty = opts.pretty ?? wantsPrettyLogs();
  const stream = opts.to === 'stderr' ? process.stderr : process.stdout;
  if (!pretty) return pino({ level, base, redact: REDACT }, pino.destination({ dest: opts.to === 'stderr' ? 2 : 1, sync: true }));
  const format = prettyFactory({ colorize: Boolean(stream.isTTY), ignore: 'pid,hostname', translateTime: 'HH:MM:ss' });
  return pino({ level, base, redact: REDACT }, { write: (line: string) => void stream.write(format(line)) });
}

/**
 * Relays a worker's output to this process's stdout, one line at a time, tagged with its rank.
 * JSON log lines get a `rank` field (or a `[rank N]` prefix when pretty); anything else the
 * worker printed (a native library's warning, a crash trace) is passed through with the prefix.
 */
export function relayWorkerOutput(stream: Readable, label: string, pretty: boolean, sink: (text: string) => void): void {
  const format = pretty ? prettyFactory({ colorize: Boolean(process.stdout.isTTY), ignore: 'pid,hostname,rank', translateTime: 'HH:MM:ss' }) : undefined;
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  lines.on('line', (line) => {
    let obj: Record<string, unknown> | undefined;
    if (line.startsWith('{')) {
      try {
        const parsed: unknown = JSON.parse(line);
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) obj = parsed as Record<string, unknown>;
      } catch {
        obj = undefined;
      }
    }
    if (!obj) return sink(`[${label}] ${line}\n`);
    if (format) return sink(`[${label}] ${format(obj)}`);
    sink(JSON.stringify({ worker: label, ...obj }) + '\n');
  });
}
