import { exitCode } from '../action.js';
import { Command } from 'commander';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BpeTokenizer, byteLevelTokenizerJson, describeTokenizer, loadCorpus, trainBpe, trainSentencePieceBpe } from '@trainer/data';
import { TrainerError } from '@trainer/errors';
import { createLogger } from '@trainer/launcher';
import { int } from '../parse.js';
import { LineWriter, checkIds, checkText, isJsonl, jsonlRecords, parsePlainIds, plainText } from './tokenizer-io.js';

const TRAIN_TYPES = ['trainer', 'byte-bpe', 'sentencepiece-bpe'];
const TOKENIZER_PATH_HELP = "a tokenizer.json (Hugging Face's or ours), a Hugging Face model folder (its tokenizer.json, else vocab.json + merges.txt) or a GPT-2 vocab.json / merges.txt";

export function tokenizerCommand(): Command {
  const cmd = new Command('tokenizer').description('BPE tokenizers: train ours, or encode, decode and inspect any supported tokenizer (Hugging Face tokenizer.json, GPT-2 files)');
  cmd
    .command('train')
    .description("train a BPE tokenizer on a corpus: trainer's own file (default), or a Hugging Face tokenizer.json that other tools load (--type)")
    .option('--data <source...>', 'moby-dick, sotu, or .txt/.jsonl files and folders', ['moby-dick'])
    .option('--vocab <n>', 'vocabulary size (trainer, byte-bpe: 256 bytes + merges + <|endoftext|>; sentencepiece-bpe: 3 specials + 256 bytes + characters + merges)', int(257), 2048)
    .option('--type <type>', 'trainer (our byte-level file), byte-bpe (Hugging Face tokenizer.json in GPT-2 layout) or sentencepiece-bpe (Hugging Face tokenizer.json in Llama 2 layout: characters, byte fallback)', 'trainer')
    .option('--out <file>', 'where to write the tokenizer', 'tokenizer.json')
    .action(exitCode(async (o: { data: string[]; vocab: number; type: string; out: string }) => {
      if (!TRAIN_TYPES.includes(o.type)) {
        throw new TrainerError('TRAINER_ERR_USAGE', `--type ${o.type} is not one of ${TRAIN_TYPES.join(', ')}`, { hint: 'byte-bpe for GPT-2 style, sentencepiece-bpe for Llama 2 style, trainer for our own file' });
      }
      const log = createLogger({ base: { role: 'tokenizer' } });
      const corpus = await loadCorpus(o.data.length === 1 ? o.data[0] : o.data);
      log.info(`corpus ${corpus.name}: ${corpus.documents.length} documents`);
      const started = performance.now();
      let tokenizer: BpeTokenizer;
      await mkdir(dirname(o.out), { recursive: true });
      if (o.type === 'sentencepiece-bpe') {
        const json = trainSentencePieceBpe(corpus.documents, { vocabSize: o.vocab });
        await writeFile(o.out, JSON.stringify(json));
        tokenizer = BpeTokenizer.fromJSON(json);
      } else {
        tokenizer = trainBpe(corpus.documents, { vocabSize: o.vocab });
        if (o.type === 'byte-bpe') {
          const json = byteLevelTokenizerJson(tokenizer);
          await writeFile(o.out, JSON.stringify(json));
          tokenizer = BpeTokenizer.fromJSON(json);
        } else await tokenizer.save(o.out);
      }
      const sample = corpus.documents[0].slice(0, 2000);
      const ratio = Buffer.byteLength(sample) / Math.max(1, tokenizer.encode(sample).length);
      log.info(`trained ${tokenizer.vocabSize} tokens (${o.type}) in ${((performance.now() - started) / 1000).toFixed(1)} s (${ratio.toFixed(2)} bytes/token on the first document); wrote ${o.out}`);
      return 0;
    }));
  cmd
    .command('encode')
    .description('token ids of texts, as Hugging Face\'s encode: a .jsonl input gives one {"ids": [...]} line per {"text": ...} line, in order; another file is one text')
    .requiredOption('--tokenizer <path>', TOKENIZER_PATH_HELP)
    .requiredOption('--input <file>', '.jsonl with a "text" field per line, or a UTF-8 text file')
    .option('--json', 'print {"ids": [...]} lines (always so for .jsonl input); otherwise ids separated by spaces')
    .option('--add-special-tokens', "put the post-processor's special tokens around each text (Llama 2's <s>); either way, added tokens written in the text are matched for Hugging Face files, as its encode does (trainer's own files never turn text into <|endoftext|>)")
    .action(exitCode(async (o: { tokenizer: string; input: string; json?: boolean; addSpecialTokens?: boolean }) => {
      const tokenizer = await BpeTokenizer.load(o.tokenizer);
      const out = new LineWriter();
      const opts = { addSpecialTokens: o.addSpecialTokens === true };
      if (isJsonl(o.input)) {
        for await (const { value } of jsonlRecords(o.input, 'text', checkText)) await out.line(`{"ids":[${tokenizer.encode(value, opts).join(',')}]}`);
      } else {
        const ids = tokenizer.encode(await plainText(o.input), opts);
        await out.line(o.json ? `{"ids":[${ids.join(',')}]}` : ids.join(' '));
      }
      await out.flush();
      return 0;
    }));
  cmd
    .command('decode')
    .description('text of token ids, as Hugging Face\'s decode(ids): a .jsonl input of {"ids": [...]} lines gives one {"text": ...} line each; another file is one sequence of whitespace-separated ids')
    .requiredOption('--tokenizer <path>', TOKENIZER_PATH_HELP)
    .requiredOption('--input <file>', '.jsonl with an "ids" array per line, or a file of whitespace-separated ids')
    .option('--json', 'print {"text": ...} lines (always so for .jsonl input); otherwise the text itself')
    .action(exitCode(async (o: { tokenizer: string; input: string; json?: boolean }) => {
      const tokenizer = await BpeTokenizer.load(o.tokenizer);
      const out = new LineWriter();
      const decodeAt = (ids: number[], where: string): string => {
        try {
          return tokenizer.decode(ids);
        } catch (err) {
          if (err instanceof TrainerError) throw new TrainerError(err.code, `${where}: ${err.message}`, { hint: err.hint, cause: err, details: { ...err.details, where } });
          throw err;
        }
      };
      if (isJsonl(o.input)) {
        for await (const { line, value } of jsonlRecords(o.input, 'ids', checkIds)) await out.line(JSON.stringify({ text: decodeAt(value, `${o.input}:${line}`) }));
        await out.flush();
      } else {
        const text = decodeAt(parsePlainIds(o.input, await plainText(o.input)), o.input);
        if (o.json) await out.line(JSON.stringify({ text }));
        else process.stdout.write(text);
        await out.flush();
      }
      return 0;
    }));
  cmd
    .command('inspect')
    .description('kind, vocabulary size, special tokens, component chain and hash of a tokenizer')
    .argument('<path>', TOKENIZER_PATH_HELP)
    .option('--json', 'print one JSON object')
    .action(exitCode(async (path: string, o: { json?: boolean }) => {
      const info = describeTokenizer(await BpeTokenizer.load(path));
      if (o.json) {
        process.stdout.write(`${JSON.stringify(info)}\n`);
        return 0;
      }
      const specials = Object.entries(info.specialTokens);
      const shown = specials.slice(0, 12).map(([t, id]) => `${t}=${id}`).join(' ');
      const lines = [
        `kind            ${info.kind}`,
        `vocab size      ${info.vocabSize}`,
        `special tokens  ${specials.length}: ${shown}${specials.length > 12 ? ' ...' : ''}`,
        `added tokens    ${info.addedTokens} (not special)`,
        `end of text     ${info.eotToken}`,
        `normalizer      ${info.components.normalizer}`,
        `pre-tokenizer   ${info.components.preTokenizer}`,
        `model           ${info.components.model}`,
        `post-processor  ${info.components.postProcessor}`,
        `decoder         ${info.components.decoder}`,
        `hash            ${info.hash}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
      return 0;
    }));
  return cmd;
}

