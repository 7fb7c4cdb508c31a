import { Transform } from 'node:stream';
import { Decompress } from 'fzstd';

/**
 * A zstd decompressing stream. Node 20's zlib has no zstd (it arrives in Node 22.15), so this
 * wraps fzstd's streaming decoder (pure JavaScript, no native build, MIT; by the author of fflate).
 * Concatenated frames decode one after the other, as `zstd -d` does; a truncated or corrupt
 * input fails the stream.
 */
export function zstdDecompressor(): Transform {
  const out = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      try {
        decoder.push(chunk);
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done) {
      try {
        decoder.push(new Uint8Array(0), true);
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
  // A decoded block may be a view of fzstd's window or of the input chunk: copy it out.
  const decoder = new Decompress((data) => {
    if (data.length > 0) out.push(Buffer.from(data));
  });
  return out;
}
