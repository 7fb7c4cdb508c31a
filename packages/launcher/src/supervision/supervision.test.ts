import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrainerError } from '@trainer/errors';
import { describe, expect, it } from 'vitest';
import type { JobSpec } from '../job-spec.js';
import { elasticRendezvous, resizeJob } from './elastic.js';
import { parseHostfile, pickHosts } from './hostfile.js';
import { remoteCommand, shellQuote, travellingEnv } from './remote-shell.js';
import { decideRestart, isRestartable, lostSteps, type RoundRecord } from './restart-policy.js';

const failed = (round: number, code: string, lastStep?: number): RoundRecord => ({
  round, world: 2, startStep: 0, resumedFrom: null, startedAt: 0, ...(lastStep === undefined ? {} : { lastStep }),
  failure: { rank: 1, host: 'h', pid: 1, lastStep, error: { code, message: 'boom' } },
});

describe('restart policy', () => {
  it('restarts until --max-restarts, then says they are used up', () => {
    expect(decideRestart([failed(0, 'TRAINER_ERR_WORKER_EXITED', 5)], 2)).toEqual({ restart: true });
    const two = [failed(0, 'TRAINER_ERR_WORKER_EXITED', 5), failed(1, 'TRAINER_ERR_WORKER_EXITED', 7), failed(2, 'TRAINER_ERR_WORKER_EXITED', 9)];
    expect(decideRestart(two, 2)).toMatchObject({ restart: false, futile: false, code: 'TRAINER_ERR_RESTARTS_EXHAUSTED' });
    expect(decideRestart([failed(0, 'TRAINER_ERR_WORKER_EXITED', 5)], 0)).toMatchObject({ restart: false, futile: false });
  });

  it('never restarts what a restart reproduces, nor a run that was stopped', () => {
    for (const code of ['TRAINER_ERR_BACKEND_UNAVAILABLE', 'TRAINER_ERR_CORPUS_NOT_FOUND', 'TRAINER_ERR_NONFINITE', 'TRAINER_ERR_RENDEZVOUS_TIMEOUT', 'TRAINER_ERR_TOKENIZER_FORMAT']) {
      expect(isRestartable(code), code).toBe(false);
      expect(decideRestart([failed(0, code, 3)], 5)).toMatchObject({ restart: false, futile: true, code: 'TRAINER_ERR_NOT_RESTARTABLE' });
    }
    for (const code of ['TRAINER_ERR_WORKER_EXITED', 'TRAINER_ERR_HEARTBEAT_TIMEOUT', 'TRAINER_ERR_COLLECTIVE_TIMEOUT', 'TRAINER_ERR_COLLECTIVE_MISMATCH', 'TRAINER_ERR_PEER_LOST']) expect(isRestartable(code), code).toBe(true);
    expect(decideRestart([failed(0, 'TRAINER_ERR_ABORTED', 3)], 5)).toMatchObject({ restart: false, futile: false });
  });

  it('stops when two rounds in a row fail the same way before their first step', () => {
    expect(decideRestart([failed(0, 'TRAINER_ERR_INJECTED_FAULT')], 5)).toEqual({ restart: true });
    expect(decideRestart([failed(0, 'TRAINER_ERR_INJECTED_FAULT'), failed(1, 'TRAINER_ERR_INJECTED_FAULT')], 5)).toMatchObject({ restart: false, futile: true, code: 'TRAINER_ERR_RESTART_FUTILE' });
    // Another cause, or progress in between, is worth another try.
    expect(decideRestart([failed(0, 'TRAINER_ERR_INJECTED_FAULT'), failed(1, 'TRAINER_ERR_WORKER_EXITED')], 5)).toEqual({ restart: true });
    expect(decideRestart([failed(0, 'TRAINER_ERR_INJECTED_FAULT', 4), failed(1, 'TRAINER_ERR_INJECTED_FAULT')], 5)).toEqual({ restart: true });
  });

  it('counts the steps trained again', () => {
    expect(lostSteps({ ...failed(0, 'X', 9), startStep: 0 }, 6)).toBe(4); // steps 6..9
    expect(lostSteps({ ...failed(1, 'X'), startStep: 6 }, 6)).toBe(0); // failed before a step
    expect(lostSteps({ ...failed(1, 'X'), startStep: 6 }, 4)).toBe(2); // the newest checkpoint was corrupt
  });
});

describe('elastic resize', () => {
  const job = { globalBatch: 12, tp: 1, pp: 1, microBatch: 3 } as JobSpec;
  it('splits the global batch over the new data-parallel size, or says why it cannot', () => {
    expect(resizeJob(job, 2, {})).toMatchObject({ microBatch: 6 });
    expect(resizeJob(job, 3, { microBatches: 2 })).toMatchObject({ microBatch: 2 });
    expect(resizeJob(job, 5, {})).toBeInstanceOf(TrainerError);
    expect(resizeJob({ ...job, tp: 2 } as JobSpec, 3, {})).toMatchObject({ code: 'TRAINER_ERR_MESH' });
  });
  it('picks the largest world at least minWorld that the job runs on', () => {
    expect(elasticRendezvous(2, {}).shrink(5, job)).toMatchObject({ world: 4, job: { microBatch: 3 } });
    expect(elasticRendezvous(2, {}).shrink(1, job)).toBeUndefined();
    expect(elasticRendezvous(3, { microBatch: 4 }).shrink(4, job)).toMatchObject({ world: 3 });
  });
});

describe('hostfile and remote commands', () => {
  it('parses hosts and slots, refusing bad lines with file:line', () => {
    const hosts = parseHostfile('# cluster\n10.0.0.1 slots=4\n\nnode2   # no slots\nalice@node3 slots=1\n', 'hf');
    expect(hosts).toEqual([{ host: '10.0.0.1', slots: 4, where: 'hf:2' }, { host: 'node2', where: 'hf:4' }, { host: 'alice@node3', slots: 1, where: 'hf:5' }]);
    expect(pickHosts(hosts, 2, 'hf').map((h) => h.host)).toEqual(['10.0.0.1', 'node2']);
    expect(() => pickHosts(hosts, 4, 'hf')).toThrow(/--nodes 4 asks for more hosts than hf lists \(3\)/);
    expect(() => parseHostfile('a slots=0\n', 'hf')).toThrow(/hf:1: "slots=0" is not slots=N/);
    expect(() => parseHostfile('a\na\n', 'hf')).toThrow(/hf:2: host a is listed twice \(also at hf:1\)/);
    expect(() => parseHostfile('a; rm -rf /\n', 'hf')).toThrow(/TRAINER_ERR_HOSTFILE|is not a host name/);
    expect(() => parseHostfile('# nothing\n', 'hf')).toThrow(/lists no hosts/);
  });

  it('quotes for the remote shell and sends the right environment, never the token', () => {
    expect(shellQuote("it's $HOME")).toBe(`'it'\\''s $HOME'`);
    expect(remoteCommand('/a b', { X: '1 2' }, ['node', 'x.js'])).toBe(`cd '/a b' && exec env 'X=1 2' node x.js`);
    const dir = mkdtempSync(join(tmpdir(), 'env-'));
    writeFileSync(join(dir, '.trainer_env'), '# extra\nLD_LIBRARY_PATH=/opt/lib\n');
    const env = travellingEnv({ TRAINER_FAULT: 'x', TRAINER_TOKEN: 'secret', NODE_OPTIONS: '--max-old-space-size=4096', HOME: '/root', RANK: '3' }, dir);
    expect(env).toEqual({ TRAINER_FAULT: 'x', NODE_OPTIONS: '--max-old-space-size=4096', LD_LIBRARY_PATH: '/opt/lib' });
    writeFileSync(join(dir, '.trainer_env'), 'TRAINER_TOKEN=oops\n');
    expect(() => travellingEnv({}, dir)).toThrow(/the token never goes in .trainer_env/);
  });
});
