import { TrainerError } from '@trainer/errors';
import { expect } from 'vitest';

/**
 * Test helper: runs `action` (sync or async), asserts it throws a TrainerError with `code`, a
 * message matching `message` and a non-empty hint, and returns the error for further checks.
 */
export async function expectTrainerError(action: () => unknown, code: string, message?: RegExp): Promise<TrainerError> {
  let thrown: unknown;
  try {
    await action();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'expected a TrainerError to be thrown').toBeInstanceOf(TrainerError);
  const err = thrown as TrainerError;
  expect(err.code).toBe(code);
  if (message) expect(err.message).toMatch(message);
  expect(err.hint ?? '').not.toBe('');
  return err;
}
