/**
 * Corpus BLEU as sacreBLEU computes it (Papineni et al. 2002; Post 2018), with its defaults:
 * BLEU-4, the 13a tokenizer, mixed case, 'exp' smoothing, no effective order.
 *
 *   p_n  = sum over segments of clipped n-gram matches / sum of hypothesis n-grams   (n = 1..4)
 *          (a hypothesis n-gram counts at most as often as it occurs in any one reference)
 *   BP   = 1 if c >= r, else exp(1 - r / c)      c: hypothesis tokens, r: for every segment the
 *                                                reference length closest to its hypothesis (ties: shorter)
 *   BLEU = 100 * BP * exp(mean_n log p_n)
 *
 * 'exp' smoothing (mteval-v13a's): the k-th order with zero matches gets precision
 * 1 / (2^k * total_n) instead of 0. With no hypothesis n-grams of some order at all, BLEU is 0.
 */
export interface BleuScore {
  /** 0..100. */
  score: number;
  /** p_1..p_4 in percent. */
  precisions: number[];
  brevityPenalty: number;
  /** c / r. */
  ratio: number;
  hypLength: number;
  refLength: number;
  /** Clipped matches and hypothesis n-grams per order. */
  counts: number[];
  totals: number[];
}

export const BLEU_MAX_ORDER = 4;

/**
 * sacreBLEU's 13a tokenizer (mteval-v13a.pl's, language-independent part plus the Western
 * punctuation rules): symbols and punctuation become tokens, '.' and ',' except next to digits,
 * '-' after a digit; the result is split on whitespace.
 */
export function tokenize13a(line: string): string[] {
  let s = line.replace(/<skipped>/g, '').replace(/-\n/g, '').replace(/\n/g, ' ');
  if (s.includes('&')) s = s.replace(/&quot;/g, '"').replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
  s = ` ${s} `;
  s = s.replace(/([{-~[-` -&(-+:-@/])/g, ' $1 ');
  s = s.replace(/([^0-9])([.,])/g, '$1 $2 ');
  s = s.replace(/([.,])([^0-9])/g, ' $1 $2');
  s = s.replace(/([0-9])(-)/g, '$1 $2 ');
  return s.split(/\s+/).filter((t) => t.length > 0);
}

/** Counts of every n-gram, per order (index n - 1), keyed by the tokens as JSON (no collisions). */
function ngramCounts(tokens: readonly string[], maxOrder: number): Array<Map<string, number>> {
  const byOrder: Array<Map<string, number>> = [];
  for (let n = 1; n <= maxOrder; n++) {
    const counts = new Map<string, number>();
    for (let i = 0; i + n <= tokens.length; i++) {
      const key = JSON.stringify(tokens.slice(i, i + n));
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    byOrder.push(counts);
  }
  return byOrder;
}

function closestRefLength(hypLen: number, refLens: readonly number[]): number {
  let bestDiff = -1;
  let best = -1;
  for (const r of refLens) {
    const d = Math.abs(hypLen - r);
    if (bestDiff === -1 || d < bestDiff || (d === bestDiff && r < best)) {
      bestDiff = d;
      best = r;
    }
  }
  return best;
}

/**
 * Corpus BLEU of `hypotheses` against `references`: references[i] holds segment i's references
 * (one or more; empty strings are skipped, as sacreBLEU's variable number of references).
 */
export function corpusBleu(hypotheses: readonly string[], references: readonly (readonly string[])[], opts: { smooth?: 'exp' | 'none'; tokenize?: (s: string) => string[] } = {}): BleuScore {
  if (hypotheses.length !== references.length) throw new RangeError(`${hypotheses.length} hypotheses but ${references.length} reference lists`);
  const tokenize = opts.tokenize ?? tokenize13a;
  const N = BLEU_MAX_ORDER;
  const counts = new Array<number>(N).fill(0);
  const totals = new Array<number>(N).fill(0);
  let hypLength = 0;
  let refLength = 0;
  hypotheses.forEach((hyp, i) => {
    const h = tokenize(hyp.trimEnd());
    const refs = references[i].filter((r) => r !== '').map((r) => tokenize(r.trimEnd()));
    if (refs.length === 0) throw new RangeError(`segment ${i} has no reference`);
    hypLength += h.length;
    refLength += closestRefLength(h.length, refs.map((r) => r.length));
    // Clipping: an n-gram counts at most as often as it occurs in the reference that has it most.
    const maxRef = ngramCounts([], N);
    for (const r of refs) {
      ngramCounts(r, N).forEach((m, k) => {
        for (const [g, c] of m) maxRef[k].set(g, Math.max(maxRef[k].get(g) ?? 0, c));
      });
    }
    ngramCounts(h, N).forEach((m, k) => {
      for (const [g, c] of m) counts[k] += Math.min(c, maxRef[k].get(g) ?? 0);
    });
    for (let n = 1; n <= N; n++) totals[n - 1] += Math.max(0, h.length - n + 1);
  });
  const precisions = new Array<number>(N).fill(0);
  let smoothMteval = 1;
  for (let n = 1; n <= N; n++) {
    if (totals[n - 1] === 0) break;
    if (counts[n - 1] === 0) {
      if ((opts.smooth ?? 'exp') === 'exp') {
        smoothMteval *= 2;
        precisions[n - 1] = 100 / (smoothMteval * totals[n - 1]);
      }
    } else {
      precisions[n - 1] = (100 * counts[n - 1]) / totals[n - 1];
    }
  }
  const brevityPenalty = hypLength < refLength ? (hypLength > 0 ? Math.exp(1 - refLength / hypLength) : 0) : 1;
  const logMean = precisions.reduce((a, p) => a + (p === 0 ? -9999999999 : Math.log(p)), 0) / N;
  return {
    score: brevityPenalty * Math.exp(logMean), precisions, brevityPenalty, ratio: refLength > 0 ? hypLength / refLength : 0,
    hypLength, refLength, counts, totals,
  };
}

/** sacreBLEU's one-line summary: "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)". */
export function formatBleu(b: BleuScore): string {
  return `BLEU = ${b.score.toFixed(2)} ${b.precisions.map((p) => p.toFixed(1)).join('/')} (BP = ${b.brevityPenalty.toFixed(3)} ratio = ${b.ratio.toFixed(3)} hyp_len = ${b.hypLength} ref_len = ${b.refLength})`;
}

/** Exact match: the hypothesis equals one of the references, ignoring surrounding whitespace. */
export function exactMatch(hypothesis: string, references: readonly string[]): boolean {
  const h = hypothesis.trim();
  return references.some((r) => r.trim() === h);
}
