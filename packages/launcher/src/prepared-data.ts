/**
 * `--data` naming datasets prepared by `trainer data prepare` (folders with a manifest.json of
 * format trainer-dataset), optionally weighted (`--data web=0.7 books=0.3`, or one argument
 * `web=0.7,books=0.3`): resolved once by the coordinator, which also picks the tokenizer (the
 * --tokenizer given, else the one `data prepare` copied into the first dataset) and refuses a
 * dataset whose tokens another tokenizer made.
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BpeTokenizer, PreparedDataset } from '@trainer/data';
import { TrainerError } from '@trainer/errors';

export interface PreparedDataSpec {
  datasets: { path: string; weight: number }[];
}

async function isDatasetDir(path: string): Promise<boolean> {
  try {
    return (await stat(join(path, 'manifest.json'))).isFile() && (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** The prepared datasets `data` names, or null when it names corpora (no entry is a dataset folder). */
export async function parsePreparedData(data: string | readonly string[]): Promise<PreparedDataSpec | null> {
  const entries = (typeof data === 'string' ? [data] : [...data]).flatMap((d) => d.split(',')).map((d) => d.trim()).filter(Boolean);
  const parsed = entries.map((e) => {
    const m = /^(.*)=([^=/]+)$/.exec(e);
    return m ? { path: m[1], weightText: m[2] } : { path: e, weightText: undefined };
  });
  const isDataset = await Promise.all(parsed.map((p) => isDatasetDir(p.path)));
  if (!isDataset.some(Boolean)) {
    if (parsed.some((p) => p.weightText !== undefined)) {
      throw new TrainerError('TRAINER_ERR_DATA_MIXTURE', `weights (${entries.join(', ')}) are for prepared datasets, and none of these is one`, {
        hint: 'prepare each source with `trainer data prepare --out DIR`, then pass --data DIR_A=0.7,DIR_B=0.3',
      });
    }
    return null;
  }
  const notDataset = parsed.filter((_, i) => !isDataset[i]);
  if (notDataset.length) {
    throw new TrainerError('TRAINER_ERR_DATA_MIXTURE', `--data mixes prepared datasets with ${notDataset.map((p) => p.path).join(', ')}, which ${notDataset.length > 1 ? 'are not' : 'is not'} one`, {
      hint: 'prepare every source with `trainer data prepare`, or train on corpora only',
    });
  }
  const weights = parsed.map((p) => (p.weightText === undefined ? (parsed.length === 1 ? 1 : NaN) : Number(p.weightText)));
  if (weights.some((w) => !(w > 0) || !Number.isFinite(w))) {
    throw new TrainerError('TRAINER_ERR_DATA_MIXTURE', `a mixture needs a positive weight for every dataset: ${entries.join(', ')}`, {
      hint: 'write each as DIR=WEIGHT, e.g. --data web=0.7,books=0.3 (weights are normalized)',
    });
  }
  return { datasets: parsed.map((p, i) => ({ path: resolve(p.path), weight: weights[i] })) };
}

/**
 * Opens the datasets, checks they share one tokenizer and that it is the run's, and returns the
 * tokenizer (from --tokenizer, else the dataset's tokenizer.json) with the splits' token counts.
 */
export async function checkPreparedData(spec: PreparedDataSpec, tokenizerPath: string | undefined): Promise<{ tokenizer: BpeTokenizer; train: number; val: number }> {
  const opened = await Promise.all(spec.datasets.map((d) => PreparedDataset.open(d.path)));
  try {
    const own = join(spec.datasets[0].path, 'tokenizer.json');
    let tokenizer: BpeTokenizer;
    try {
      tokenizer = await BpeTokenizer.load(tokenizerPath ?? own);
    } catch (err) {
      if (tokenizerPath !== undefined) throw err;
      throw new TrainerError('TRAINER_ERR_DATASET_TOKENIZER', `${spec.datasets[0].path} holds no tokenizer.json and no --tokenizer was given`, {
        cause: err, hint: 'pass the tokenizer the dataset was prepared with: --tokenizer FILE',
      });
    }
    opened.forEach((ds, i) => {
      if (ds.tokenizerHash !== tokenizer.hash) {
        throw new TrainerError('TRAINER_ERR_DATASET_TOKENIZER', `the dataset ${spec.datasets[i].path} was prepared with another tokenizer (hash ${ds.tokenizerHash.slice(0, 12)}…) than the run's (${tokenizer.hash.slice(0, 12)}…)`, {
          hint: 'train with the tokenizer the dataset was prepared with (its tokenizer.json), or prepare the data again with this one',
          details: { dataset: spec.datasets[i].path, datasetTokenizer: ds.tokenizerHash, runTokenizer: tokenizer.hash },
        });
      }
    });
    return { tokenizer, train: opened.reduce((s, d) => s + d.length('train'), 0), val: opened[0].length('val') };
  } finally {
    await Promise.all(opened.map((d) => d.close()));
  }
}
