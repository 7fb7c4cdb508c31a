import { InvalidArgumentError } from 'commander';

/** Option parsers that say what was wrong with the value (commander prints them with the flag). */
export function int(min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
    return n;
  };
}

export function num(min = -Infinity, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`expected a number in [${min}, ${max}], got ${JSON.stringify(value)}`);
    return n;
  };
}

export function oneOf<T extends string>(values: readonly T[]) {
  return (value: string): T => {
    if (!(values as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${values.join(', ')}, got ${JSON.stringify(value)}`);
    return value as T;
  };
}

/** Sizes like 1MiB, 16MiB, 4096, 2KB. */
export function parseByteSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`expected a size like 16MiB, got ${JSON.stringify(value)}`);
  const unit = (m[2] ?? 'B').toLowerCase();
  const mult: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3 };
  const bytes = Math.round(Number(m[1]) * mult[unit]);
  if (bytes < 4) throw new InvalidArgumentError(`size ${value} is smaller than one float`);
  return bytes;
}

export function list<T>(parse: (v: string) => T) {
  return (value: string): T[] => value.split(',').map((v) => parse(v.trim()));
}
