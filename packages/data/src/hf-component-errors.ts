import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from './codes.js';
import { isRecord } from './internal/is-record.js';

/**
 * The two ways a Hugging Face tokenizer.json is refused: a component this build does not
 * implement (TRAINER_ERR_TOKENIZER_UNSUPPORTED, naming it in `details.component`) and a malformed
 * file (TRAINER_ERR_TOKENIZER_FORMAT). Shared by the loader and the component builders.
 */
export function unsupported(component: string, hint: string): TrainerError {
  return new TrainerError(DataErrorCode.TOKENIZER_UNSUPPORTED, `Hugging Face tokenizer.json: ${component} is not supported`, {
    hint,
    details: { component },
  });
}

export function malformed(message: string): TrainerError {
  return new TrainerError(DataErrorCode.TOKENIZER_FORMAT, `Hugging Face tokenizer.json refused: ${message}`, {
    hint: 'the file is damaged or was not written by Hugging Face tokenizers: download it again',
  });
}

/** "pre-tokenizer Sequence[Split, ByteLevel]" and the like, for messages. */
export function describeComponent(kind: string, component: unknown): string {
  if (component === null || component === undefined) return `${kind} none`;
  if (!isRecord(component)) return `${kind} ${JSON.stringify(component)}`;
  const inner = [component.normalizers, component.pretokenizers, component.processors, component.decoders].find(Array.isArray) as unknown[] | undefined;
  const parts = inner ? `[${inner.map((c) => (isRecord(c) ? String(c.type) : JSON.stringify(c))).join(', ')}]` : '';
  return `${kind} ${String(component.type)}${parts}`;
}

/** A tokenizer.json `pattern`: { "String": literal } or { "Regex": Oniguruma source }. */
export function patternOf(kind: string, pattern: unknown): { literal: string } | { regex: string } {
  if (isRecord(pattern) && typeof pattern.String === 'string') return { literal: pattern.String };
  if (isRecord(pattern) && typeof pattern.Regex === 'string') return { regex: pattern.Regex };
  throw malformed(`${kind} pattern ${JSON.stringify(pattern)}, expected {"String": ...} or {"Regex": ...}`);
}

export function stringOption(kind: string, component: Record<string, unknown>, key: string, fallback?: string): string {
  const value = component[key] ?? fallback;
  if (typeof value !== 'string') throw malformed(`${kind} "${key}" is ${JSON.stringify(value)}, expected a string`);
  return value;
}
