/**
 * Published SentencePiece-style BPE tokenizers (Llama 2 / Mistral family: Prepend + Replace
 * normalizers, byte fallback, Replace/ByteFallback/Fuse/Strip decoder; Gemma: 256k vocabulary, no
 * prefix) encode and decode exactly as @huggingface/tokenizers. Gemma alone takes seconds to load
 * in both implementations, so it gets fewer lines.
 */
import { describe } from 'vitest';
import { itMatchesHuggingFace } from './internal/published-equivalence.js';

describe('published SentencePiece-style tokenizers encode and decode as @huggingface/tokenizers', () => {
  itMatchesHuggingFace('llama2', 1000);
  itMatchesHuggingFace('gemma', 400);
});
