import { fileURLToPath } from 'node:url';

/** The `trainer` entry script, for starting workers with the same code as this process. */
export const CLI_BIN = fileURLToPath(new URL('../bin/trainer.js', import.meta.url));
