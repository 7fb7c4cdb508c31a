/**
 * More published byte-level tokenizers: Llama 3.1, Qwen 3, and GPT-4o's o200k (whose Split is
 * inverted with Removed, so it runs the general pre-tokenizer chain rather than the fast path)
 * encode and decode exactly as @huggingface/tokenizers. See internal/published-equivalence.ts.
 */
import { describe } from 'vitest';
import { itMatchesHuggingFace } from './internal/published-equivalence.js';

describe('more published byte-level tokenizers encode and decode as @huggingface/tokenizers', () => {
  itMatchesHuggingFace('llama3_1', 300);
  itMatchesHuggingFace('qwen3', 300);
  itMatchesHuggingFace('gpt4o', 500);
});
