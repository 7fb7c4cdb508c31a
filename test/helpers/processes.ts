import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The built CLI, run exactly as a user runs it. */
export const TRAINER_BIN = fileURLToPath(new URL('../../packages/cli/bin/trainer.js', import.meta.url));

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningTrainer {
  child: ChildProcess;
  /** Marker in the environment of this process and every process it starts. */
  marker: string;
  result: Promise<RunResult>;
  output(): string;
}

const started: RunningTrainer[] = [];

/**
 * Starts `trainer <args>` with a unique marker in its environment, inherited by every worker it
 * spawns, so a test can find (and kill) every process of its run, orphans included.
 */
export function startTrainer(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): RunningTrainer {
  const marker = `trainer-test-${randomUUID()}`;
  const child = spawn(process.execPath, [TRAINER_BIN, ...args], {
    env: { ...process.env, TRAINER_LOG_FORMAT: 'json', TRAINER_TEST_MARKER: marker, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => killMarked(marker), opts.timeoutMs ?? 120_000);
  const result = new Promise<RunResult>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }));
  const run = { child, marker, result, output: () => stdout + stderr };
  started.push(run);
  return run;
}

export async function runTrainer(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return startTrainer(args, opts).result;
}

/** PIDs of live processes whose environment carries the marker. */
export function pidsWithMarker(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'latin1');
      if (!env.includes(`TRAINER_TEST_MARKER=${marker}`)) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (/^\d+ \(.*\) Z/.test(stat)) continue; // a zombie is already dead
      pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

export function killMarked(marker: string): void {
  for (const pid of pidsWithMarker(marker)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/** For afterEach: kill whatever any test of this file started and did not stop. */
export function killAllStarted(): void {
  for (const run of started.splice(0)) killMarked(run.marker);
}

export async function waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Parsed JSON log lines of a run's output. */
export function logLines(text: string): Record<string, unknown>[] {
  return text.split('\n').filter((l) => l.startsWith('{')).flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/**
 * Runs the tasks `limit` at a time (each a function starting one run), resolving to their results
 * in the tasks' order: independent runs of a test overlap their process start-up and waits.
 */
export async function inParallel<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, lane));
  return results;
}
