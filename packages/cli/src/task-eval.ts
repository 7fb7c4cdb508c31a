import type { BpeTokenizer } from '@trainer/data';
import type { GPT } from '@trainer/model';
import { corpusBleu, exactMatch, groupByPrompt, type BleuScore, type TaskExample } from '@trainer/tasks';

/**
 * Task evaluation: one completion per prompt (greedy unless a temperature is given), generated
 * until <|endoftext|> or `maxNewTokens`, scored against every completion the task gives for that
 * prompt: corpus BLEU (sacreBLEU's BLEU-4, 13a tokenization) and exact match.
 */
export interface TaskEvalOptions {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  seed: number;
  /** Called after each prompt (progress). */
  onPrompt?: (done: number, total: number) => void;
}

export interface TaskPrediction {
  prompt: string;
  prediction: string;
  references: string[];
  exact: boolean;
}

export interface TaskEvalResult {
  prompts: number;
  bleu: BleuScore;
  exactMatch: number;
  predictions: TaskPrediction[];
}

export async function evaluateTask(model: GPT, tokenizer: BpeTokenizer, examples: readonly TaskExample[], o: TaskEvalOptions): Promise<TaskEvalResult> {
  const groups = groupByPrompt(examples);
  const predictions: TaskPrediction[] = [];
  for (const [i, g] of groups.entries()) {
    let prompt = tokenizer.encode(g.prompt);
    // Keep room for the completion: the model sees at most its context.
    const room = model.config.contextLength - o.maxNewTokens;
    if (room > 0 && prompt.length > room) prompt = prompt.slice(prompt.length - room);
    const ids = await model.generate(prompt, { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, seed: o.seed + i, stopToken: tokenizer.eotToken });
    const generated = ids.slice(prompt.length);
    if (generated[generated.length - 1] === tokenizer.eotToken) generated.pop();
    const prediction = tokenizer.decode(generated);
    o.onPrompt?.(i + 1, groups.length);
    predictions.push({ prompt: g.prompt, prediction, references: g.references, exact: exactMatch(prediction, g.references) });
  }
  const bleu = corpusBleu(predictions.map((p) => p.prediction), predictions.map((p) => p.references));
  const exact = predictions.filter((p) => p.exact).length / Math.max(1, predictions.length);
  return { prompts: predictions.length, bleu, exactMatch: exact, predictions };
}
