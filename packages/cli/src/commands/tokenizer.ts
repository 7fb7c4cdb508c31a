import { exitCode } from '../action.js';
import { Command } from 'commander';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { loadCorpus, trainBpe } from '@trainer/data';
import { createLogger } from '@trainer/launcher';
import { int } from '../parse.js';

export function tokenizerCommand(): Command {
  const cmd = new Command('tokenizer').description('byte-level BPE tokenizers');
  cmd
    .command('train')
    .description('train a byte-level BPE tokenizer on a corpus and save it as tokenizer.json')
    .option('--data <source...>', 'moby-dick, sotu, or .txt/.jsonl files and folders', ['moby-dick'])
    .option('--vocab <n>', 'vocabulary size (256 bytes + merges + <|endoftext|>)', int(257), 2048)
    .option('--out <file>', 'where to write the tokenizer', 'tokenizer.json')
    .action(exitCode(async (o: { data: string[]; vocab: number; out: string }) => {
      const log = createLogger({ base: { role: 'tokenizer' } });
      const corpus = await loadCorpus(o.data.length === 1 ? o.data[0] : o.data);
      log.info(`corpus ${corpus.name}: ${corpus.documents.length} documents`);
      const started = performance.now();
      const tokenizer = trainBpe(corpus.documents, { vocabSize: o.vocab });
      await mkdir(dirname(o.out), { recursive: true });
      await tokenizer.save(o.out);
      const sample = corpus.documents[0].slice(0, 2000);
      const ratio = Buffer.byteLength(sample) / Math.max(1, tokenizer.encode(sample).length);
      log.info(`trained ${tokenizer.vocabSize} tokens in ${((performance.now() - started) / 1000).toFixed(1)} s (${ratio.toFixed(2)} bytes/token on the first document); wrote ${o.out}`);
      return 0;
    }));
  return cmd;
}
