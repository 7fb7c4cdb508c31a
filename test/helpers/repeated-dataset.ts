import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATASET_FORMAT, DATASET_FORMAT_VERSION, encodeShardHeader, MANIFEST_FILE, PreparedDataset, shardFileName, shardSourceHash, type DatasetManifest, type ShardEntry } from '@trainer/data';

/**
 * A large prepared dataset made of a small real one (`trainer data prepare` of a real corpus):
 * its training tokens repeated (each repeat one document) into shards of about `shardBytes`,
 * until the training split holds `minBytes` of tokens, written in the dataset format
 * (TRAINTOK header with this dataset's id and the shard's name, the .idx of document starts, a
 * manifest with every file's SHA-256), so it reads, checks and trains as a prepared one. Only
 * the tokenizing of the repeats is skipped (minutes for gigabytes on 2 cores); the validation
 * split and tokenizer are the small dataset's.
 */
export async function writeRepeatedDataset(small: string, out: string, minBytes: number, shardBytes = 64 * 2 ** 20): Promise<DatasetManifest> {
  const src = await PreparedDataset.open(small);
  const m = src.manifest;
  const once = Buffer.from((await src.read('train', 0, src.length('train'))).buffer);
  await src.close();
  const repeats = Math.max(1, Math.floor(shardBytes / once.length));
  const payload = Buffer.concat(Array.from({ length: repeats }, () => once));
  const tokens = payload.length / m.bytesPerToken;
  const copies = Math.ceil(minBytes / payload.length);
  const payloadSha = createHash('sha256').update(payload).digest('hex');
  // Each repeat is a document: the .idx lists their starts.
  const idx = Buffer.alloc(32 + 8 * repeats);
  idx.write('TRAINIDX', 0, 'latin1');
  idx.writeUInt32LE(1, 8);
  idx.writeBigUInt64LE(BigInt(repeats), 16);
  idx.writeBigUInt64LE(BigInt(tokens), 24);
  for (let r = 0; r < repeats; r++) idx.writeBigUInt64LE(BigInt((r * once.length) / m.bytesPerToken), 32 + 8 * r);
  const idxSha = createHash('sha256').update(idx).digest('hex');
  const datasetId = createHash('sha256').update(`repeated:${m.datasetId}:${copies}`).digest('hex');
  mkdirSync(out, { recursive: true });
  const shards: ShardEntry[] = [];
  for (let i = 0; i < copies; i++) {
    const file = shardFileName('train', i);
    const indexFile = file.replace(/\.tok$/, '.idx');
    const header = encodeShardHeader({ bytesPerToken: m.bytesPerToken, tokens, vocabSize: m.tokenizer.vocabSize, tokenizerHash: m.tokenizer.hash, sourceHash: shardSourceHash(datasetId, file), payloadSha256: payloadSha });
    writeFileSync(join(out, file), Buffer.concat([header, payload]));
    writeFileSync(join(out, indexFile), idx);
    shards.push({ file, tokens, documents: repeats, bytes: header.length + payload.length, sha256: createHash('sha256').update(header).update(payload).digest('hex'), indexFile, indexBytes: idx.length, indexSha256: idxSha });
  }
  // The validation shards: the small dataset's, under this dataset's id.
  const val: ShardEntry[] = [];
  for (const s of m.splits.val.shards) {
    const bytes = readFileSync(join(small, s.file));
    const header = Buffer.from(bytes.subarray(0, 128));
    header.write(shardSourceHash(datasetId, s.file), 64, 'hex');
    const file = Buffer.concat([header, bytes.subarray(128)]);
    writeFileSync(join(out, s.file), file);
    copyFileSync(join(small, s.indexFile), join(out, s.indexFile));
    val.push({ ...s, sha256: createHash('sha256').update(file).digest('hex') });
  }
  copyFileSync(join(small, 'tokenizer.json'), join(out, 'tokenizer.json'));
  const manifest: DatasetManifest = {
    ...m,
    format: DATASET_FORMAT,
    version: DATASET_FORMAT_VERSION,
    datasetId,
    splits: { train: { tokens: tokens * copies, documents: repeats * copies, shards }, val: { ...m.splits.val, shards: val } },
    totals: { tokens: tokens * copies + m.splits.val.tokens, documents: repeats * copies + m.splits.val.documents, textBytes: m.totals.textBytes * repeats * copies },
    created: new Date().toISOString(),
  };
  writeFileSync(join(out, MANIFEST_FILE), JSON.stringify(manifest, null, 1) + '\n');
  return manifest;
}
