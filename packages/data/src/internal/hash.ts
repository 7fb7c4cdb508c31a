import { createHash } from 'node:crypto';

/** Hex SHA-256 of a string (UTF-8) or bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Hex SHA-256 of a list of strings, each length-prefixed so that ['ab', 'c'] and ['a', 'bc']
 * hash differently. Streams the strings into the hash, so it never builds one big string.
 */
export function sha256OfStrings(parts: Iterable<string>): string {
  const hash = createHash('sha256');
  const encoder = new TextEncoder();
  for (const part of parts) {
    const bytes = encoder.encode(part);
    hash.update(`${bytes.length}:`);
    hash.update(bytes);
  }
  return hash.digest('hex');
}
