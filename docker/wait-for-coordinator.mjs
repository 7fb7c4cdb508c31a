#!/usr/bin/env node
// Waits until a worker's coordinator accepts TCP connections, then exits 0.
//
//   node docker/wait-for-coordinator.mjs [worker options]     (docker/entrypoint.sh runs it)
//
// The address is the worker's: --coordinator HOST:PORT among the options, else MASTER_ADDR and
// MASTER_PORT. Without one there is nothing to wait for (exit 0: the worker itself then reports
// TRAINER_ERR_NO_COORDINATOR). Containers, pods and batch tasks start in any order, and a
// coordinator listens only once its job is prepared (corpus tokenized, checkpoint verified), so a
// worker started first would fail at once; this retries every second instead, through DNS names
// that do not resolve yet (a pod's headless-Service name appears when the pod exists), refused
// connections and dropped packets, for TRAINER_WAIT_TIMEOUT seconds (default 600). Then it fails
// the way the CLI fails: `trainer: CODE: message`, a hint, exit code 1.
import { connect } from 'node:net';

const DEFAULT_TIMEOUT_S = 600;
const RETRY_MS = 1000;
/** One attempt's limit: a firewall that drops packets leaves a connect hanging otherwise. */
const ATTEMPT_TIMEOUT_MS = 3000;
/** How often a still-waiting worker says so. */
const REPORT_EVERY_MS = 30_000;

function fail(code, message, hint, exitCode) {
  process.stderr.write(`trainer: ${code}: ${message}\n  hint: ${hint}\n`);
  process.exit(exitCode);
}

/** The coordinator a worker with these options and this environment would join, or undefined. */
function coordinatorAddress(args, env) {
  for (let i = 0; i < args.length; i++) {
    const value = args[i] === '--coordinator' ? args[i + 1] : args[i].startsWith('--coordinator=') ? args[i].slice('--coordinator='.length) : undefined;
    if (value === undefined) continue;
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(value) ?? /^([^:]+):(\d+)$/.exec(value);
    // A malformed value is the worker's to report (TRAINER_ERR_BAD_ADDRESS).
    return m ? { host: m[1], port: Number(m[2]) } : undefined;
  }
  const port = Number(env.MASTER_PORT);
  if (!env.MASTER_ADDR || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host: env.MASTER_ADDR, port };
}

function attempt({ host, port }) {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: ATTEMPT_TIMEOUT_MS });
    socket.once('connect', () => {
      socket.destroy();
      resolve(null);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(`no answer within ${ATTEMPT_TIMEOUT_MS / 1000} s`);
    });
    socket.once('error', (err) => resolve(err.code ?? err.message));
  });
}

const address = coordinatorAddress(process.argv.slice(2), process.env);
if (address) {
  const rawTimeout = process.env.TRAINER_WAIT_TIMEOUT ?? String(DEFAULT_TIMEOUT_S);
  const timeoutS = Number(rawTimeout);
  if (rawTimeout.trim() === '' || !Number.isFinite(timeoutS) || timeoutS < 0) {
    fail('TRAINER_ERR_BAD_ENV', `environment variable TRAINER_WAIT_TIMEOUT=${JSON.stringify(rawTimeout)} is not a number of seconds`, 'fix or unset TRAINER_WAIT_TIMEOUT', 2);
  }
  const where = `${address.host}:${address.port}`;
  const start = Date.now();
  let reported = -Infinity;
  for (;;) {
    const error = await attempt(address);
    if (error === null) break;
    const waited = Date.now() - start;
    if (waited >= timeoutS * 1000) {
      fail('TRAINER_ERR_CONNECT_FAILED', `the coordinator at ${where} did not accept a connection within ${timeoutS} s (last error: ${error})`,
        `check that the coordinator runs and that ${where} is the right address (MASTER_ADDR, MASTER_PORT or --coordinator) and that no firewall closes that port; TRAINER_WAIT_TIMEOUT sets how long to wait`, 1);
    }
    if (waited - reported >= REPORT_EVERY_MS) {
      reported = waited;
      process.stderr.write(`trainer: waiting for the coordinator at ${where} (${error}); trying again every ${RETRY_MS / 1000} s for up to ${timeoutS} s\n`);
    }
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}
