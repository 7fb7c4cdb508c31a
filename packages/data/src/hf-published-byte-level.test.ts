/**
 * Published byte-level BPE tokenizers (GPT-2; Llama 3 and Qwen 2.5, whose Split regex has
 * `(?i:...)` groups) encode and decode exactly as @huggingface/tokenizers, an independent
 * implementation of Hugging Face's tokenizers. See internal/published-equivalence.ts.
 */
import { describe } from 'vitest';
import { itMatchesHuggingFace } from './internal/published-equivalence.js';

describe('published byte-level tokenizers encode and decode as @huggingface/tokenizers', () => {
  itMatchesHuggingFace('gpt2', 1000);
  itMatchesHuggingFace('llama3', 1000);
  itMatchesHuggingFace('qwen2_5', 1000);
});
