import { describe, expect, it } from 'vitest';
import { TrainerError, asTrainerError, trainerErrorFrom } from './index.js';

describe('TrainerError', () => {
  it('carries a code, message and hint, and formats them for a terminal', () => {
    const err = new TrainerError('TRAINER_ERR_EXAMPLE', 'the thing was wrong', { hint: 'do this instead' });
    expect(err.code).toBe('TRAINER_ERR_EXAMPLE');
    expect(err.format()).toBe('TRAINER_ERR_EXAMPLE: the thing was wrong\n  hint: do this instead');
  });

  it('refuses codes outside the TRAINER_ERR_ namespace', () => {
    expect(() => new TrainerError('BAD', 'x')).toThrow(/invalid error code/);
  });

  it('survives a round trip through a plain object', () => {
    const err = new TrainerError('TRAINER_ERR_EXAMPLE', 'm', { hint: 'h', details: { rank: 3 } });
    const back = trainerErrorFrom(JSON.parse(JSON.stringify(err.toJSON())));
    expect(back.code).toBe('TRAINER_ERR_EXAMPLE');
    expect(back.details).toEqual({ rank: 3 });
  });

  it('serializes without undefined fields (wire formats refuse them)', () => {
    expect(Object.keys(new TrainerError('TRAINER_ERR_EXAMPLE', 'm').toJSON())).toEqual(['code', 'message']);
  });

  it('wraps unexpected errors as internal ones', () => {
    const wrapped = asTrainerError(new RangeError('boom'));
    expect(wrapped.code).toBe('TRAINER_ERR_INTERNAL');
    expect(wrapped.message).toBe('boom');
  });
});
